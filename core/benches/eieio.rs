//! Codec throughput for EIEIO data messages and boot packets.
//!
//! Every benchmark reports throughput in packets (criterion's "elem/s"), so the figures read
//! directly as packets per second on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinnbed_core::proto::boot;
use spinnbed_core::proto::eieio::{DataBuilder, DataHeader, DataPacket, DataRepr, EieioMessage, EieioType, KeyPrefix};

/// A full 256-byte-class message: 63 32-bit keys, no prefixes (254 bytes).
fn keys32() -> Vec<u8> {
    let mut b = DataBuilder::new(DataHeader::new(EieioType::Key32)).expect("valid header");
    for k in 0..63u32 {
        b.push_key(0x0123_0000 + k * 7).expect("fits");
    }
    b.as_bytes().to_vec()
}

/// 31 32-bit key/payload pairs behind both prefixes.
fn key_payloads32() -> Vec<u8> {
    let header = DataHeader {
        key_prefix: Some(KeyPrefix::upper(0xABCD)),
        payload_prefix: Some(0x1000),
        ..DataHeader::new(EieioType::KeyPayload32)
    };
    let mut b = DataBuilder::new(header).expect("valid header");
    while !b.is_full() {
        let k = b.count() as u32;
        b.push_key_payload(k, k * 3).expect("fits");
    }
    b.as_bytes().to_vec()
}

fn eieio(c: &mut Criterion) {
    let mut g = c.benchmark_group("eieio");
    g.throughput(Throughput::Elements(1));
    let bytes = keys32();
    let kp = key_payloads32();

    g.bench_function("parse 63x32-bit keys", |b| {
        b.iter(|| EieioMessage::parse(black_box(&bytes[..])).expect("parses"))
    });
    let EieioMessage::Data(repr) = EieioMessage::parse(&bytes).expect("parses") else {
        unreachable!("a data message")
    };
    let mut out = [0u8; 256];
    g.bench_function("emit 63x32-bit keys", |b| {
        b.iter(|| {
            let n = repr.buffer_len();
            black_box(&repr).emit(&mut DataPacket::new_unchecked(&mut out[..n]));
            black_box(&out);
        })
    });
    g.bench_function("parse+emit 63x32-bit keys", |b| {
        b.iter(|| {
            let msg = EieioMessage::parse(black_box(&bytes[..])).expect("parses");
            msg.emit(&mut out).expect("fits")
        })
    });
    g.bench_function("parse+iterate 63x32-bit keys", |b| {
        b.iter(|| {
            let packet = DataPacket::new_checked(black_box(&bytes[..])).expect("valid");
            packet.events().fold(0u32, |acc, e| acc ^ e.key)
        })
    });
    g.bench_function("parse+iterate 31x32-bit key+payload, prefixes", |b| {
        b.iter(|| {
            let packet = DataPacket::new_checked(black_box(&kp[..])).expect("valid");
            let repr = DataRepr::parse(&packet).expect("valid");
            repr.events().fold(0u32, |acc, e| acc ^ e.key ^ e.payload.unwrap_or(0))
        })
    });
    g.bench_function("build 63x32-bit keys", |b| {
        b.iter(|| {
            let mut builder = DataBuilder::new(DataHeader::new(EieioType::Key32)).expect("valid");
            for k in 0..63u32 {
                builder.push_key(black_box(k)).expect("fits");
            }
            builder.as_bytes()[0]
        })
    });
    g.finish();
}

fn boot_packets(c: &mut Criterion) {
    let mut g = c.benchmark_group("boot");
    g.throughput(Throughput::Elements(1));
    let image: Vec<u8> = (0..27_168u32).map(|i| (i * 31) as u8).collect();
    let sv = boot::SystemVariables::rig(0x6b02_44a3);
    let packets: Vec<Vec<u8>> = boot::boot_packets(&image, &sv).expect("valid image").collect();
    let block = &packets[1];

    g.bench_function("parse 1042-byte block", |b| {
        b.iter(|| {
            let packet = boot::Packet::new_checked(black_box(&block[..])).expect("valid");
            boot::Repr::parse(&packet).expect("valid")
        })
    });
    let repr = boot::Repr::block(0, &image[..1024]).expect("valid block");
    let mut out = vec![0u8; repr.buffer_len()];
    g.bench_function("emit 1042-byte block from image", |b| {
        b.iter(|| {
            black_box(&repr).emit(&mut boot::Packet::new_unchecked(&mut out[..]));
            black_box(&out);
        })
    });
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("reassemble 27-block image (29 packets)", |b| {
        b.iter(|| {
            let mut rom = boot::BootReassembler::new();
            let mut last = None;
            for p in &packets {
                last = Some(rom.handle_datagram(black_box(p)));
            }
            last
        })
    });
    g.finish();
}

criterion_group!(benches, eieio, boot_packets);
criterion_main!(benches);
