//! EIEIO live output through IP tags and input through reverse IP tags.

mod common;

use common::*;
use spinnbed_core::proto::eieio::{EieioMessage, EieioType};
use spinnbed_core::proto::scp::{IptagConfig, IptagFlags, IptagRequest, Request};
use spinnbed_core::proto::sdp;
use spinnbed_core::time::Duration;
use spinnbed_emulator::{Config, EieioConfig};
use std::net::{Ipv4Addr, SocketAddrV4};

const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const LISTENER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50000);

fn booted(rate: u32) -> Rig {
    let config = Config {
        eieio: EieioConfig {
            rate,
            keys_per_packet: 63,
        },
        ..Config::default()
    };
    let mut rig = Rig::with_config(vec![single_board()], config);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    rig
}

fn set_output_tag(rig: &mut Rig, strip: bool) {
    let config = IptagConfig {
        flags: if strip { IptagFlags::STRIP } else { IptagFlags(0) },
        ..IptagConfig::forward(*LISTENER.ip(), LISTENER.port())
    };
    rig.call(
        BOARD,
        to_chip(0, 0, 0),
        1,
        Request::Iptag(IptagRequest::Set { tag: 0, config }),
    );
}

fn run_app(rig: &mut Rig) {
    rig.call(
        BOARD,
        to_chip(0, 0, 0),
        2,
        Request::ApplicationRun {
            app_id: 30,
            flags: 0,
            cores: 0b110,
        },
    );
}

#[test]
fn running_app_streams_through_a_strip_tag() {
    let mut rig = booted(100);
    set_output_tag(&mut rig, true);
    assert!(rig.advance(Duration::from_secs(1)).is_empty(), "no app yet");
    run_app(&mut rig);
    let out = rig.advance(Duration::from_secs(1));
    assert_eq!(out.len(), 100);
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.src, SocketAddrV4::new(BOARD, 17893));
        assert_eq!(d.dst, LISTENER);
        let EieioMessage::Data(m) = EieioMessage::parse(&d.payload).unwrap() else {
            panic!()
        };
        assert_eq!(m.header.eieio_type, EieioType::Key32);
        assert_eq!(m.count(), 63);
        let first = m.events().next().unwrap();
        assert_eq!(first.key, (i as u32 * 63) & 0xFFFF);
    }
    assert_eq!(rig.emu.stats().eieio_out, 100);
    // Stop the app (spinnman AppStop): the stream ends.
    rig.request_one(scp(BOARD), hex("000087ff00ffffffffff1400341200003f001eff0250003f0080"));
    assert!(rig.advance(Duration::from_secs(1)).len() <= 1);
    assert!(rig.advance(Duration::from_secs(1)).is_empty());
}

#[test]
fn without_strip_the_sdp_header_comes_first() {
    let mut rig = booted(10);
    set_output_tag(&mut rig, false);
    run_app(&mut rig);
    let out = rig.advance(Duration::from_millis(250));
    assert_eq!(out.len(), 2);
    let p = sdp::parse_udp(&out[0].payload).unwrap();
    let h = sdp::Repr::parse(&p).unwrap();
    assert_eq!(h.tag, 0);
    assert!(EieioMessage::parse(p.data()).is_ok());
    // Clearing the tag stops the stream.
    rig.call(
        BOARD,
        to_chip(0, 0, 0),
        3,
        Request::Iptag(IptagRequest::Clear { tag: 0 }),
    );
    assert!(rig.advance(Duration::from_secs(1)).is_empty());
}

#[test]
fn rate_zero_disables_streaming() {
    let mut rig = booted(0);
    set_output_tag(&mut rig, true);
    run_app(&mut rig);
    assert!(rig.advance(Duration::from_secs(1)).is_empty());
}

#[test]
fn reverse_tag_receives_eieio() {
    let mut rig = booted(0);
    // spinnman ReverseIPTagSet(dest (1,2), p3, port 12345, tag 4, sdp port 1).
    rig.request_one(scp(BOARD), hex("000087ff00ff0000ffff1a003412042301303930020100000000"));
    let port = SocketAddrV4::new(BOARD, 12345);
    assert_eq!(rig.emu.reverse_tag_endpoints(rig.now), vec![port]);
    // spinnman EIEIOConnection.send_eieio_message(KEY_32_BIT 1, 2, 3) (§6).
    assert!(rig.send(port, hex("0308010000000200000003000000")).is_empty());
    assert!(rig.send(port, vec![0xFF]).is_empty());
    let s = rig.emu.stats();
    assert_eq!((s.eieio_in, s.reverse_tag_other), (1, 1));
    // No reverse tag on another port: nobody listens.
    rig.send(SocketAddrV4::new(BOARD, 12346), hex("0308010000000200000003000000"));
    assert_eq!(rig.emu.stats().dropped_unknown_dst, 1);
}

/// An application whose core's user registers hold [`spinnbed_emulator::LIVE_MAGIC`] streams
/// with its own settings: rate, keys per datagram and a timestamp payload prefix holding the
/// send time; the board counts what it sent.
#[test]
fn the_application_sets_its_own_stream_in_its_user_registers() {
    use spinnbed_emulator::{StreamParams, user_register_address};
    let mut rig = booted(100);
    let params = StreamParams {
        rate: 50,
        keys_per_packet: 10,
        timestamp: true,
    };
    let words: Vec<u8> = params.to_user_words().iter().flat_map(|w| w.to_le_bytes()).collect();
    rig.call(
        BOARD,
        to_chip(0, 0, 0),
        4,
        Request::Write {
            addr: user_register_address(1, 1),
            access: spinnbed_core::proto::scp::AccessType::Word,
            data: &words,
        },
    );
    set_output_tag(&mut rig, true);
    let before = rig.emu.live_output(BOARD).unwrap();
    assert_eq!(before.datagrams, 0);
    run_app(&mut rig);
    let out = rig.advance(Duration::from_secs(1));
    assert_eq!(out.len(), 50);
    let mut last_stamp = None;
    for (i, d) in out.iter().enumerate() {
        let EieioMessage::Data(m) = EieioMessage::parse(&d.payload).unwrap() else {
            panic!()
        };
        assert_eq!(m.count(), 10);
        assert!(m.header.payload_is_timestamp);
        let stamp = m.header.payload_prefix.unwrap();
        // 20 ms apart, from the emulator's clock.
        if let Some(last) = last_stamp {
            assert_eq!(stamp - last, 20_000);
        }
        last_stamp = Some(stamp);
        assert_eq!(m.events().next().unwrap().key, (i as u32 * 10) & 0xFFFF);
    }
    let after = rig.emu.live_output(BOARD).unwrap();
    assert_eq!((after.datagrams, after.events), (50, 500));
    assert_eq!(after.bytes, out.iter().map(|d| d.payload.len() as u64).sum::<u64>());
    // Only booted boards have counters.
    assert_eq!(rig.emu.live_output(Ipv4Addr::new(10, 9, 9, 9)), None);
}
