//! Program lock benchmarks: Shamir split and recovery of the 32-byte lock key for t, n up to
//! 100, with the baselines that put them in proportion in the same run: n = 10 against
//! n = 100, and one X25519 sealed-box open (the per-approval public-key cost the meter pays
//! in `lock apply` anyway).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lock::os_rng;
use lock::seal;
use lock::shamir;

const KEY: [u8; 32] = [0x5a; 32];

fn split(c: &mut Criterion) {
    let mut group = c.benchmark_group("shamir/split 32-byte key");
    for (t, n) in [(2u8, 10u8), (10, 10), (10, 100), (50, 100), (100, 100)] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("t={t} n={n}")),
            &(t, n),
            |b, &(t, n)| {
                let mut rng = os_rng();
                b.iter(|| shamir::split(black_box(&KEY), t, n, &mut rng).unwrap())
            },
        );
    }
    group.finish();
}

fn recover(c: &mut Criterion) {
    let mut group = c.benchmark_group("shamir/recover 32-byte key");
    for (t, n) in [(2u8, 10u8), (10, 10), (10, 100), (50, 100), (100, 100)] {
        let shares = shamir::split(&KEY, t, n, &mut os_rng()).unwrap();
        // The last t shares, so recovery never sees the lowest indices only.
        let used = shares[usize::from(n - t)..].to_vec();
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("t={t} n={n}")),
            &used,
            |b, used| b.iter(|| shamir::recover(black_box(used), t).unwrap()),
        );
    }
    group.finish();
}

fn sealed_box(c: &mut Criterion) {
    use x25519_dalek::{PublicKey, StaticSecret};
    let secret = StaticSecret::from([0x42u8; 32]);
    let public = PublicKey::from(&secret);
    let share = [7u8; 33];
    let sealed = seal::seal(&public, &share, b"context", &mut os_rng());
    let mut group = c.benchmark_group("baseline");
    group.bench_function(
        "open one sealed share (X25519 + HKDF + ChaCha20-Poly1305)",
        |b| b.iter(|| seal::open(&secret, black_box(&sealed), b"context").unwrap()),
    );
    group.finish();
}

criterion_group!(benches, split, recover, sealed_box);
criterion_main!(benches);
