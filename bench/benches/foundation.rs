//! Foundation benchmarks: edge keys, frame decoding and the straightforward aggregation.
//!
//! Each group carries its own baseline so results read as ratios from one run:
//! keystream vs. a bare AES block encryption, frame parsing vs. the CRC alone, and aggregation
//! vs. scanning the same log without aggregating.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::{edge_seed, master_key};
use ingest::{FrameScanner, FrameView};

fn keystream(c: &mut Criterion) {
    let seed = edge_seed(&master_key(42), 7, 3, 11);
    let mut group = c.benchmark_group("keystream");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fill_lanes/L=1", |b| {
        let mut out = [0u64; 1];
        let mut round = 0u32;
        b.iter(|| {
            round = round.wrapping_add(1);
            engine::keystream::fill_lanes(&seed, black_box(round), &mut out);
            black_box(out)
        })
    });
    group.bench_function("baseline/expand+encrypt one block", |b| {
        let mut round = 0u32;
        b.iter(|| {
            round = round.wrapping_add(1);
            let cipher = Aes128::new(GenericArray::from_slice(seed.as_bytes()));
            let mut block = GenericArray::clone_from_slice(&[round as u8; 16]);
            cipher.encrypt_block(&mut block);
            black_box(block)
        })
    });
    group.finish();
}

fn frames(c: &mut Criterion) {
    let bench = bench::SimulatedLog::new(4, 200, 24, 1);
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Bytes(bench.bytes.len() as u64));
    group.bench_function("scan+parse", |b| {
        b.iter(|| {
            FrameScanner::new(black_box(&bench.bytes))
                .unwrap()
                .filter(|s| s.frame.is_ok())
                .count()
        })
    });
    group.bench_function("baseline/crc32c of the whole log", |b| {
        b.iter(|| crc32c::crc32c(black_box(&bench.bytes)))
    });
    group.bench_function("aggregate (straightforward)", |b| {
        b.iter(|| black_box(&bench).aggregate_straightforward())
    });
    group.finish();
    let first = FrameScanner::new(&bench.bytes)
        .unwrap()
        .next()
        .unwrap()
        .frame
        .unwrap();
    let one = first.as_bytes().to_vec();
    c.bench_function("frames/parse one 40-byte frame", |b| {
        b.iter(|| FrameView::parse(black_box(&one), 1).is_ok())
    });
}

criterion_group!(benches, keystream, frames);
criterion_main!(benches);
