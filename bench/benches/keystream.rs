//! Batch edge keys per backend and shape, against the naive one-cipher-per-key baseline.
//!
//! - `edges/*`: many edges × one round (the multi-key kernels), 4,096 seeds per batch;
//! - `rounds/*`: one edge × 96 rounds (expand once; `portable` and `aes-ni` run the `aes`
//!   crate's parallel blocks, `vaes` and `vaes512` the VAES kernels);
//! - `naive/*`: a fresh `ctr::Ctr128BE<Aes128>` per key (`engine::keystream::fill_lanes`), the
//!   baseline every ratio in `bench/README.md` is taken against, measured in the same run.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::keystream::{Backend, Keystream, fill_lanes};
use engine::{EdgeSeed, EdgeSeedDeriver, master_key};

const EDGES: usize = 4096;
const ROUNDS: u32 = 96;

fn seeds() -> Vec<EdgeSeed> {
    let deriver = EdgeSeedDeriver::new(&master_key(42));
    (0..EDGES as u32)
        .map(|i| deriver.derive(1, i, i + 1))
        .collect()
}

fn edges(c: &mut Criterion) {
    let seeds = seeds();
    let mut group = c.benchmark_group("keystream/edges");
    group.throughput(Throughput::Elements(EDGES as u64));
    for lanes in [1usize, 2, 8] {
        let mut out = vec![0u64; EDGES * lanes];
        for backend in Backend::available() {
            let keystream = Keystream::with_backend(backend).unwrap();
            group.bench_with_input(
                BenchmarkId::new(backend.name(), format!("L={lanes}")),
                &lanes,
                |b, &lanes| {
                    let mut round = 0u32;
                    b.iter(|| {
                        round = round.wrapping_add(1);
                        keystream
                            .fill_edges(&seeds, black_box(round), lanes, &mut out)
                            .unwrap();
                        black_box(&out);
                    })
                },
            );
        }
        group.bench_with_input(
            BenchmarkId::new("naive", format!("L={lanes}")),
            &lanes,
            |b, &lanes| {
                let mut round = 0u32;
                b.iter(|| {
                    round = round.wrapping_add(1);
                    for (seed, key) in seeds.iter().zip(out.chunks_exact_mut(lanes)) {
                        fill_lanes(seed, black_box(round), key);
                    }
                    black_box(&out);
                })
            },
        );
    }
    group.finish();
}

fn rounds(c: &mut Criterion) {
    let seed = seeds().swap_remove(0);
    let mut group = c.benchmark_group("keystream/rounds");
    group.throughput(Throughput::Elements(u64::from(ROUNDS)));
    for lanes in [1usize, 2, 8] {
        let mut out = vec![0u64; ROUNDS as usize * lanes];
        let mut first = 0u32;
        let rounds: Vec<u32> = (0..ROUNDS).collect();
        for backend in Backend::available() {
            let keystream = Keystream::with_backend(backend).unwrap();
            group.bench_with_input(
                BenchmarkId::new(backend.name(), format!("L={lanes}")),
                &lanes,
                |b, &lanes| {
                    b.iter(|| {
                        keystream
                            .fill_rounds(&seed, black_box(&rounds), lanes, &mut out)
                            .unwrap();
                        black_box(&out);
                    })
                },
            );
        }
        group.bench_with_input(
            BenchmarkId::new("naive", format!("L={lanes}")),
            &lanes,
            |b, &lanes| {
                b.iter(|| {
                    first = first.wrapping_add(ROUNDS);
                    for (round, key) in (first..first + ROUNDS).zip(out.chunks_exact_mut(lanes)) {
                        fill_lanes(&seed, black_box(round), key);
                    }
                    black_box(&out);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, edges, rounds);
criterion_main!(benches);
