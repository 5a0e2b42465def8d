//! Host-side throughput: how many SCP requests per second one [`ScpClient`] (and a [`Host`]
//! running a transfer) can push through an instant loopback responder, per policy.
//!
//! Target: well over 1 million requests per second per client on one core, so that the host
//! side is never the bottleneck of a simulated run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinnbed_core::datagram::Datagram;
use spinnbed_core::host::{Host, HostConfig, Policy, ScpClient, ScpRequest, Transfer};
use spinnbed_core::proto::scp::{Reply, ReplyMessage, Request, RequestMessage};
use spinnbed_core::proto::sdp;
use spinnbed_core::time::{Duration, Instant};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

const BOARD: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 17893);

/// Answers a request datagram as SCAMP would (OK, zero data for reads).
fn answer(request: &[u8], zeros: &[u8; 256], out: &mut [u8]) -> usize {
    let msg = RequestMessage::parse_udp(request).expect("request");
    let reply = match msg.request {
        Request::Read { len, .. } => Reply::Data(&zeros[..len as usize]),
        _ => Reply::Empty,
    };
    let mut header = msg.sdp.reply();
    header.tag = 8;
    ReplyMessage {
        sdp: header,
        seq: msg.seq,
        reply,
    }
    .emit_udp(out)
    .expect("reply")
}

fn client_round_trips(c: &mut Criterion) {
    const N: u64 = 1024;
    let mut group = c.benchmark_group("host_client");
    group.throughput(Throughput::Elements(N));
    let data = [0x5Au8; 256];
    let write = ScpRequest::new(sdp::Address::scp(0, 0, 0), &Request::write(0x6000_0000, &data)).expect("request");
    let zeros = [0u8; 256];
    for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
        group.bench_function(format!("write256_{}", policy.name()), |b| {
            let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
            b.iter(|| {
                let mut client = ScpClient::new(BOARD, policy);
                let mut now = Instant::ZERO;
                for t in 0..N {
                    client.submit(now, write.clone(), t);
                }
                while client.in_flight() > 0 {
                    now += Duration::from_micros(10);
                    while let Some((_, d)) = client.poll_transmit() {
                        let n = answer(&d, &zeros, &mut out);
                        client.handle_datagram(now, &out[..n]);
                    }
                    while let Some(e) = client.poll_event() {
                        black_box(e);
                    }
                }
                black_box(client.stats().completed)
            })
        });
    }
    group.finish();
}

fn host_transfer(c: &mut Criterion) {
    const LEN: usize = 1 << 20;
    let mut group = c.benchmark_group("host_transfer");
    group.throughput(Throughput::Bytes(LEN as u64));
    let zeros = [0u8; 256];
    group.bench_function("read_1mib_adaptive", |b| {
        let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
        b.iter(|| {
            let mut host = Host::new(HostConfig::for_policy(Policy::adaptive()));
            let t = Transfer::read(Instant::ZERO, BOARD, sdp::Address::scp(0, 0, 0), 0x6000_0000, LEN);
            host.start_transfer(t);
            let mut now = Instant::ZERO;
            let mut events = 0;
            while events == 0 {
                now += Duration::from_micros(10);
                let sent: Vec<Datagram> = std::iter::from_fn(|| host.poll_transmit()).collect();
                for d in sent {
                    let n = answer(&d.payload, &zeros, &mut out);
                    let reply = Datagram {
                        src: d.dst,
                        dst: d.src,
                        payload: out[..n].to_vec(),
                    };
                    host.handle_datagram(now, &reply);
                }
                while let Some(e) = host.poll_event() {
                    black_box(e);
                    events += 1;
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, client_round_trips, host_transfer);
criterion_main!(benches);
