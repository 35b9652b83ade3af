//! Columnar ingest benchmarks, each group with a baseline in the same run:
//! frame decoding into Arrow columns vs. reading the same bytes, the CRCs of all frames by the
//! interleaved kernel vs. the `crc32c` crate frame by frame (and the crate over the whole buffer,
//! the same bytes as one message), the lane-sum kernel vs. a scalar loop, and the whole columnar aggregation
//! vs. the straightforward one and vs. the memory-read floor (all single-threaded, in memory),
//! and reading a `graph.csv` into key graphs vs. the `csv` crate only splitting its records.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::columnar::{DEFAULT_MORSEL_FRAMES, FrameColumns, read_morsel};
use ingest::fast::{ColumnarAggregator, DEFAULT_REGROUP_BELOW, Inputs, Regroup, Tally, column_sum};
use ingest::log::LOG_HEADER_LEN;
use ingest::{AggregateOptions, FrameScanner, LogHeader};

/// The memory-read floor: every u64 word of the log added up.
fn floor(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .fold(0, u64::wrapping_add)
}

fn columnar_aggregate(log: &bench::SimulatedLog) -> usize {
    columnar_aggregate_regrouping(log, DEFAULT_REGROUP_BELOW)
}

/// The columnar engine over the whole log, one morsel after another on this thread, sorting
/// morsels whose runs of one (net, round) average fewer than `regroup_below` frames.
fn columnar_aggregate_regrouping(log: &bench::SimulatedLog, regroup_below: usize) -> usize {
    let header = LogHeader::parse(&log.bytes).unwrap();
    let aggregator = ColumnarAggregator::new(
        &log.nets,
        1,
        AggregateOptions::default(),
        Inputs::new(vec![&log.bytes]),
    )
    .with_regroup_below(regroup_below);
    let mut tally = Tally::new(false);
    let mut regroup = Regroup::new();
    let mut columns = FrameColumns::new(1, DEFAULT_MORSEL_FRAMES);
    let mut rejects = Vec::new();
    let step = DEFAULT_MORSEL_FRAMES * header.frame_len();
    let mut pos = LOG_HEADER_LEN;
    while pos < log.bytes.len() {
        rejects.clear();
        let end = (pos + step).min(log.bytes.len());
        let stop = read_morsel(&log.bytes, header, pos, end, &mut columns, &mut rejects);
        let batch = columns.finish(0).unwrap();
        aggregator.add_scan_rejects(0, &rejects, &mut tally);
        // Batches are added in file order, so the round a batch began with is complete once
        // the batch is added (see `ColumnarAggregator::add_batch`).
        if let Some(head) = aggregator.add_batch(&batch, &mut regroup, &mut tally) {
            aggregator.settle_head(head);
        }
        columns.recycle(batch);
        pos = stop;
    }
    aggregator.finish(vec![tally]).unwrap().rounds.len()
}

fn ingest(c: &mut Criterion) {
    // 8 nets x 500 clients x 24 rounds, one lane: about 96,000 frames, 3.8 MB.
    let log = bench::SimulatedLog::new(8, 500, 24, 1);
    let header = LogHeader::parse(&log.bytes).unwrap();
    let frames = (log.bytes.len() - LOG_HEADER_LEN) / header.frame_len();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(log.bytes.len() as u64));
    group.bench_function("baseline/read every word", |b| {
        b.iter(|| floor(black_box(&log.bytes)))
    });
    group.bench_function("morsels to Arrow columns", |b| {
        let mut columns = FrameColumns::new(1, DEFAULT_MORSEL_FRAMES);
        let mut rejects = Vec::new();
        let step = DEFAULT_MORSEL_FRAMES * header.frame_len();
        b.iter(|| {
            let mut pos = LOG_HEADER_LEN;
            let mut rows = 0;
            while pos < log.bytes.len() {
                let end = (pos + step).min(log.bytes.len());
                pos = read_morsel(&log.bytes, header, pos, end, &mut columns, &mut rejects);
                let batch = columns.finish(0).unwrap();
                rows += batch.len();
                columns.recycle(batch);
            }
            rows
        })
    });
    group.bench_function("scanner only (FrameScanner)", |b| {
        b.iter(|| {
            FrameScanner::new(black_box(&log.bytes))
                .unwrap()
                .filter(|s| s.frame.is_ok())
                .count()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("crc");
    group.throughput(Throughput::Bytes(log.bytes.len() as u64));
    group.bench_function("baseline/crc32c of the whole buffer", |b| {
        b.iter(|| crc32c::crc32c(black_box(&log.bytes)))
    });
    let body = &log.bytes[LOG_HEADER_LEN..];
    let frame_len = header.frame_len();
    let mut crcs = vec![0u32; body.len() / frame_len];
    group.bench_function("baseline/crc32c crate, frame by frame", |b| {
        b.iter(|| {
            ingest::crc::portable_frame_crcs(black_box(body), frame_len, &mut crcs);
            crcs[crcs.len() / 2]
        })
    });
    let backend = ingest::crc::backend();
    group.bench_function(format!("frame_crcs ({backend})"), |b| {
        b.iter(|| {
            ingest::crc::frame_crcs(black_box(body), frame_len, &mut crcs);
            crcs[crcs.len() / 2]
        })
    });
    group.finish();

    let column: Vec<u64> = (0..1u64 << 20)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let mut group = c.benchmark_group("sum kernel");
    group.throughput(Throughput::Bytes((column.len() * 8) as u64));
    group.bench_function("baseline/scalar loop", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &v in black_box(&column) {
                // black_box on the accumulator keeps this loop scalar.
                acc = black_box(acc.wrapping_add(v));
            }
            acc
        })
    });
    group.bench_function("column_sum (vectorised)", |b| {
        b.iter(|| column_sum(black_box(&column)))
    });
    group.finish();

    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(frames as u64));
    group.bench_function("baseline/read every word", |b| {
        b.iter(|| floor(black_box(&log.bytes)))
    });
    group.bench_function("columnar, one thread", |b| {
        b.iter(|| columnar_aggregate(&log))
    });
    // The same frames with each round's clients in random order: no ordered fast path.
    let shuffled = log.shuffled_within_rounds();
    group.bench_function(
        "columnar, one thread, clients shuffled within rounds",
        |b| b.iter(|| columnar_aggregate(&shuffled)),
    );
    // Round by round with the nets interleaved, as a collector writes frames as they arrive:
    // each morsel is sorted by (net, round, client) first, against the same morsels
    // aggregated as read.
    let interleaved = log.interleaved();
    group.bench_function("columnar, one thread, nets interleaved", |b| {
        b.iter(|| columnar_aggregate(&interleaved))
    });
    group.bench_function("baseline/nets interleaved, morsels as read", |b| {
        b.iter(|| columnar_aggregate_regrouping(&interleaved, 0))
    });
    // No client missing, so no resends: what dropouts and their resends cost.
    let complete = bench::SimulatedLog::with_dropout(8, 500, 24, 1, 0.0);
    group.bench_function("columnar, one thread, no dropouts", |b| {
        b.iter(|| columnar_aggregate(&complete))
    });
    group.bench_function("straightforward", |b| {
        b.iter(|| log.aggregate_straightforward())
    });
    group.finish();
}

/// Reading the key graphs that every `dcnet aggregate` run starts with: a `graph.csv` parsed
/// and built into graphs on one thread, against the `csv` crate only splitting the same text
/// into records (no field parsed, nothing built).
fn graph(c: &mut Criterion) {
    // 100 nets x 1,000 clients, k = 4: about 200,000 edges, 4.3 MB of text.
    let log = bench::SimulatedLog::new(100, 1000, 1, 1);
    let mut text = Vec::new();
    ingest::tables::write_graph_csv(&mut text, log.nets.values()).unwrap();
    let edges = log.nets.values().map(|g| g.edge_count()).sum::<usize>();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("graph");
    group.throughput(Throughput::Elements(edges as u64));
    group.bench_function("baseline/csv crate, records only", |b| {
        b.iter(|| {
            let mut reader = csv::ReaderBuilder::new().from_reader(black_box(&text[..]));
            let mut record = csv::ByteRecord::new();
            let mut rows = 0usize;
            while reader.read_byte_record(&mut record).unwrap() {
                rows += record.len();
            }
            rows
        })
    });
    group.bench_function("parse_graph_csv, one thread", |b| {
        b.iter(|| {
            one_thread.install(|| {
                ingest::tables::parse_graph_csv(std::path::Path::new("graph.csv"), &text)
                    .unwrap()
                    .len()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, graph);
criterion_main!(benches);
