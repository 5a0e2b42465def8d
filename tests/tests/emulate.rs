//! `sim emulate` over real UDP on loopback: replies come from the address and port that was
//! asked (so connected sockets, as real clients use, receive them), a flood of garbage is
//! counted and dropped, a client that never reads its replies does not stop another being
//! served, and non-loopback addresses need an explicit flag.

use rand::{Rng, SeedableRng};

use spinnbed_core::proto::scp::{Reply, ReplyKind, ReplyMessage, Request, RequestMessage};
use spinnbed_core::proto::sdp;
use spinnbed_realtime::emulate::{EmulateOptions, emulate};
use spinnbed_sim::scenario;
use spinnbed_tests::with_emulator;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tokio::net::UdpSocket;

const SCP_PORT: u16 = 17893;
const BOOT_PORT: u16 = 54321;

/// hardware-quick's frame moved to `base`.
fn scenario_at(base: &str) -> scenario::Scenario {
    let root = spinnbed_tests::repo_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("hardware-quick.toml")).unwrap();
    let text = text.replace("base = \"127.4.0.0\"", &format!("base = \"{base}\""));
    scenario::parse("emulate.toml", &text, &root).unwrap()
}

fn version_request(seq: u16) -> Vec<u8> {
    let msg = RequestMessage {
        sdp: sdp::Repr::request(sdp::Address::scp(0, 0, 0)),
        seq,
        request: Request::Version,
    };
    let mut buf = vec![0u8; 64];
    let n = msg.emit_udp(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Sends CMD_VER on a connected socket until answered (at most `tries` times, 200 ms apart);
/// returns the reply's version string.
async fn ask_version(sock: &UdpSocket, seq: u16, tries: u32) -> Option<String> {
    let mut buf = [0u8; 600];
    for _ in 0..tries {
        sock.send(&version_request(seq)).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
            let reply = ReplyMessage::parse_udp(&buf[..n], ReplyKind::Version).ok()?;
            if reply.seq != seq {
                continue;
            }
            let Reply::Version(v) = reply.reply else { return None };
            return Some(v.name().to_string());
        }
    }
    None
}

#[test]
fn serves_connected_clients_through_floods_and_silent_readers() {
    let sc = scenario_at("127.6.0.0");
    let bmp = Ipv4Addr::new(127, 6, 0, 0);
    let board = Ipv4Addr::new(127, 6, 0, 1);
    let opts = EmulateOptions {
        quiet: true,
        ..EmulateOptions::default()
    };
    let (garbage, stats) = with_emulator(sc, opts, |ready| async move {
        // 1 BMP + 6 boards, SCP and boot ports each.
        assert_eq!(std::fs::read_to_string(&ready).unwrap().trim(), "13 sockets");

        // A connected client: replies must come from exactly the address it asked.
        let good = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        good.connect(SocketAddrV4::new(bmp, SCP_PORT)).await.unwrap();
        let v = ask_version(&good, 1, 5)
            .await
            .expect("the BMP answers a connected socket");
        assert!(v.starts_with("BC&MP"), "{v}");

        // A flood of garbage at every port of the BMP and the (powered-off) board, from another
        // socket, and a client that sends thousands of valid requests and never reads.
        let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let deaf = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let targets = [
            SocketAddrV4::new(bmp, SCP_PORT),
            SocketAddrV4::new(board, SCP_PORT),
            SocketAddrV4::new(board, BOOT_PORT),
        ];
        let mut garbage = 0u64;
        for i in 0..6000u32 {
            let len = (rng.next_u32() % 300) as usize;
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            if i % 3 == 0 && bytes.len() > 12 {
                // Mostly-valid SCP headers with a nonsense body.
                bytes[..12].copy_from_slice(&version_request(9)[..12]);
            }
            if flooder.send_to(&bytes, targets[i as usize % 3]).await.is_ok() {
                garbage += 1;
            }
            if i % 2 == 0 {
                let _ = deaf
                    .send_to(&version_request(i as u16), SocketAddrV4::new(bmp, SCP_PORT))
                    .await;
            }
            if i % 1000 == 999 {
                // Meanwhile the connected client is still served.
                let v = ask_version(&good, 2 + (i / 1000) as u16, 10).await;
                assert!(v.is_some(), "the connected client was starved after {i} floods");
            }
        }
        let v = ask_version(&good, 100, 10).await;
        assert!(v.is_some(), "the connected client is served after the flood");
        garbage
    });
    // Every datagram was received and either answered or counted as dropped; none crashed it.
    assert!(stats.malformed + stats.dropped() >= garbage / 2, "{stats:?}");
    assert!(
        stats.dropped_board_off > 0,
        "datagrams to a powered-off board are counted: {stats:?}"
    );
}

#[test]
fn non_loopback_addresses_need_the_flag() {
    let sc = scenario_at("10.11.0.0");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = EmulateOptions {
        duration: Some(Duration::from_millis(10)),
        quiet: true,
        ..EmulateOptions::default()
    };
    let err = rt.block_on(emulate(&sc, &opts)).unwrap_err().to_string();
    assert!(err.contains("10.11.0.0 is not a loopback address"), "{err}");
    assert!(err.contains("--allow-non-loopback"), "{err}");
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `--impair` applies the scenario's network and faults on the emulator side: a stop-and-wait
/// client gets the answer to each request (never a stranded one) after two path latencies, and
/// a BMP-silent fault silences the BMP for exactly its window, on the emulator's clock.
#[test]
fn impair_delays_every_answer_and_faults_strike_on_time() {
    let mut sc = scenario_at("127.12.0.0");
    sc.network.latency = spinnbed_sim::quantity::dist::Dist::fixed(spinnbed_core::time::Duration::from_millis(20));
    sc.faults = vec![spinnbed_sim::scenario::FaultConfig {
        at: spinnbed_core::time::Duration::from_millis(1500),
        kind: spinnbed_sim::scenario::FaultKind::BmpSilent {
            machine: "lab".into(),
            frame: spinnbed_core::geometry::FrameId { cabinet: 0, frame: 0 },
        },
        duration: Some(spinnbed_core::time::Duration::from_millis(1500)),
    }];
    let bmp = SocketAddrV4::new(Ipv4Addr::new(127, 12, 0, 0), SCP_PORT);
    let opts = EmulateOptions {
        impair: true,
        quiet: true,
        ..EmulateOptions::default()
    };
    let t0 = std::time::Instant::now();
    let ((), stats) = with_emulator(sc, opts, |_| async move {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(bmp).await.unwrap();
        let mut buf = [0u8; 600];
        // Stop-and-wait, one try each: every request is answered, in order, after ~40 ms.
        for seq in 1..=10u16 {
            let sent = std::time::Instant::now();
            sock.send(&version_request(seq)).await.unwrap();
            let n = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("request {seq} was not answered within 500 ms"))
                .unwrap();
            let rtt = sent.elapsed();
            let reply = ReplyMessage::parse_udp(&buf[..n], ReplyKind::Version).unwrap();
            assert_eq!(reply.seq, seq, "the answer to another request");
            assert!(
                rtt >= Duration::from_millis(40),
                "{seq}: {rtt:?} is under two latencies"
            );
        }
        assert!(
            t0.elapsed() < Duration::from_millis(1400),
            "too slow to test the fault window"
        );
        // The fault: silent from 1.5 s to 3 s after start.
        tokio::time::sleep_until((t0 + Duration::from_millis(1800)).into()).await;
        assert_eq!(
            ask_version(&sock, 20, 3).await,
            None,
            "the BMP answered during its fault"
        );
        tokio::time::sleep_until((t0 + Duration::from_millis(3300)).into()).await;
        let v = ask_version(&sock, 30, 3).await;
        assert!(v.is_some_and(|v| v.starts_with("BC&MP")), "the BMP did not come back");
    });
    assert!(stats.dropped_bmp_silent >= 3, "{stats:?}");
}

/// Reverse IP tags work over real UDP: once a client sets one on a booted board, the emulator
/// listens on the board's address at the tag's port, and EIEIO sent there reaches the board.
#[test]
fn reverse_ip_tags_listen_on_real_sockets() {
    let sc = scenario_at("127.13.0.0");
    let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
    let board = Ipv4Addr::new(127, 13, 0, 1);
    let opts = EmulateOptions {
        quiet: true,
        ..EmulateOptions::default()
    };
    let ((), stats) = with_emulator(sc, opts, |_| async move {
        // Power the frame on and boot it (sim load's set-up), leaving it on.
        let load = spinnbed_realtime::load::LoadOptions {
            duration: Duration::from_millis(100),
            outstanding: 1,
            max_boards: Some(1),
            power_off: false,
            setup_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let report = spinnbed_realtime::load::load(&machines, &load, |_| {}).await.unwrap();
        assert_eq!(report.boards_loaded, 1, "{report:?}");
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(SocketAddrV4::new(board, SCP_PORT)).await.unwrap();
        // spinnman ReverseIPTagSet(dest (1, 2), p3, port 12345, tag 4, sdp port 1).
        let set = from_hex("000087ff00ff0000ffff1a003412042301303930020100000000");
        let mut buf = [0u8; 600];
        sock.send(&set).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf))
            .await
            .expect("the IPTAG SET is answered")
            .unwrap();
        assert!(n >= 14, "a {n}-byte reply");
        assert_eq!(&buf[10..12], &[0x80, 0x00], "RC_OK");
        // spinnman EIEIOConnection.send_eieio_message(KEY_32_BIT 1, 2, 3), a few times, to the
        // board's address at the tag's port (the socket opens within the emulator's next turn).
        let eieio = from_hex("0308010000000200000003000000");
        let to = SocketAddrV4::new(board, 12345);
        let host = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            host.send_to(&eieio, to).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    assert!(stats.eieio_in >= 8, "{stats}");
}
