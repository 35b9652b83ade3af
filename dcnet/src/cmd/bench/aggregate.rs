//! `dcnet bench aggregate`: the end-to-end columnar aggregation against a memory-read floor.
//!
//! The floor is the least any reader of the log must do: one pass over the same mapped bytes,
//! touching and adding every u64 word, on the same number of threads. Both measurements map the
//! file afresh, so both pay the same page-table cost; the file is in the page cache (it was just
//! written or read), so neither waits for the disk. The ratio aggregate/floor says how close
//! validating, decoding, grouping and summing get to merely reading memory.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dcnet::sim::{NetPlan, SimConfig, SimSink, run_net};
use ingest::frame::FrameFields;
use ingest::pipeline::{PipelineOptions, Progress, aggregate_files_columnar};
use ingest::{AggregateOptions, LogWriter, Nets, RoundResult};
use rayon::prelude::*;

use crate::cli::BenchAggregateConfig;

struct Sink {
    frames: Vec<u8>,
    truth: Vec<RoundResult>,
}

impl SimSink for Sink {
    fn frame(&mut self, fields: &FrameFields, lanes: &[u64]) {
        // Encoding into a Vec cannot fail for the simulator's lane counts.
        let _ = fields.encode_into(lanes, &mut self.frames);
    }
    fn reading(&mut self, _: u32, _: u32, _: u32, _: &[u64]) {}
    fn truth(&mut self, row: RoundResult) {
        self.truth.push(row);
    }
}

/// Simulates the population into `path` net by net (a few nets at a time, in parallel, so
/// memory stays small) and returns the key graphs and the truth.
fn write_log(sim: &SimConfig, path: &Path) -> Result<(Nets, Vec<RoundResult>, u64)> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let created_ms = dcnet::sim::round_start_ms(sim.first_round);
    let mut writer = LogWriter::new(
        BufWriter::with_capacity(1 << 22, file),
        sim.lanes,
        created_ms,
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    let mut nets = Nets::new();
    let mut truth = Vec::new();
    let chunk = 16u32;
    let mut first = 0;
    while first < sim.nets {
        let last = (first + chunk).min(sim.nets);
        let done: Vec<(NetPlan, Sink)> = (first..last)
            .into_par_iter()
            .map(|index| -> Result<_> {
                let plan = NetPlan::new(sim, index)?;
                let mut sink = Sink {
                    frames: Vec::new(),
                    truth: Vec::new(),
                };
                run_net(sim, &plan, &mut sink);
                Ok((plan, sink))
            })
            .collect::<Result<_>>()?;
        for (plan, sink) in done {
            let frames =
                (sink.frames.len() / ingest::frame::frame_len(usize::from(sim.lanes))) as u64;
            writer
                .write_raw(&sink.frames, frames)
                .with_context(|| format!("cannot write {}", path.display()))?;
            truth.extend(sink.truth);
            nets.insert(plan.dc_net_id, plan.graph);
        }
        first = last;
    }
    let frames = writer.frames();
    let out = writer
        .finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Written back to disk before anything is timed: the kernel's writeback of a freshly
    // written gigabyte otherwise runs during the first measurements and takes CPU time from
    // them (the first runs measured 10 to 20% slower than later ones).
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    truth.sort_by_key(|r| (r.dc_net_id, r.round));
    Ok((nets, truth, frames))
}

/// One pass over the mapped log summing every u64 word on `threads` threads.
fn floor(path: &Path, pool: &rayon::ThreadPool) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let bytes =
        ingest::mmap::open_log(path).with_context(|| format!("cannot read {}", path.display()))?;
    let whole = bytes.len() / 8 * 8;
    let words: &[u64] = bytemuck::try_cast_slice(&bytes[..whole])
        .map_err(|e| anyhow::anyhow!("the mapping is not 8-byte aligned: {e}"))?;
    let sum = pool.install(|| {
        words
            .par_chunks(1 << 16)
            .map(ingest::fast::column_sum)
            .reduce(|| 0, u64::wrapping_add)
    });
    let elapsed = started.elapsed();
    drop(bytes);
    Ok((std::hint::black_box(sum), elapsed))
}

pub fn run(config: BenchAggregateConfig) -> Result<()> {
    let sim = &config.sim;
    let temp;
    let dir: PathBuf = match &config.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let path = dir.join(format!(
        "bench-{}x{}x{}-L{}.dclog",
        sim.nets, sim.clients, sim.rounds, sim.lanes
    ));
    eprintln!(
        "writing {} nets x {} clients x {} rounds, {} lane(s), 1% dropouts to {}",
        sim.nets,
        sim.clients,
        sim.rounds,
        sim.lanes,
        path.display()
    );
    let started = Instant::now();
    let (nets, truth, frames) = write_log(sim, &path)?;
    let bytes = std::fs::metadata(&path)?.len();
    eprintln!(
        "wrote {frames} frames, {bytes} bytes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start threads")?;
    let options = AggregateOptions::default();
    let pipeline = PipelineOptions {
        threads,
        collect_rejects: false,
        ..PipelineOptions::default()
    };
    // Warm the page cache and check the result once before measuring.
    let outcome = aggregate_files_columnar(
        std::slice::from_ref(&path),
        &nets,
        options,
        pipeline,
        &Progress::default(),
    )?;
    let rows = &outcome.report.rounds;
    let matches = rows.len() == truth.len()
        && rows.iter().zip(&truth).all(|(a, b)| {
            (a.dc_net_id, a.round, a.present, a.resent, a.status, &a.sum)
                == (b.dc_net_id, b.round, b.present, b.resent, b.status, &b.sum)
        });
    if !matches {
        bail!("the aggregate differs from the simulation's truth");
    }
    ensure!(
        outcome.report.counts.total() == 0,
        "the simulated log has rejected frames"
    );
    println!(
        "log: {frames} frames of {} bytes ({bytes} bytes), {} rounds checked against the truth; {threads} threads",
        ingest::frame::frame_len(usize::from(sim.lanes)),
        rows.len()
    );
    println!("run  floor frames/s  floor GB/s  aggregate frames/s  aggregate GB/s  ratio");
    let mut ratios = Vec::new();
    for run in 1..=config.repeat {
        let (_, floor_time) = floor(&path, &pool)?;
        let started = Instant::now();
        let outcome = aggregate_files_columnar(
            std::slice::from_ref(&path),
            &nets,
            options,
            pipeline,
            &Progress::default(),
        )?;
        let aggregate_time = started.elapsed();
        std::hint::black_box(&outcome);
        let rate = |t: Duration| frames as f64 / t.as_secs_f64();
        let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
        let ratio = floor_time.as_secs_f64() / aggregate_time.as_secs_f64();
        ratios.push(ratio);
        println!(
            "{run:>3}  {:>14.1}M  {:>10.2}  {:>18.1}M  {:>14.2}  {:>4.0}%",
            rate(floor_time) / 1e6,
            gbps(floor_time),
            rate(aggregate_time) / 1e6,
            gbps(aggregate_time),
            ratio * 100.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "aggregate/floor: median {:.0}%, best {:.0}% over {} runs",
        ratios[ratios.len() / 2] * 100.0,
        ratios[ratios.len() - 1] * 100.0,
        ratios.len()
    );
    if config.dir.is_some() {
        // Keep the log for scripts/compare_duckdb.py; write the graph beside it.
        let graph = dir.join("graph.csv");
        let out = BufWriter::new(
            File::create(&graph).with_context(|| format!("cannot create {}", graph.display()))?,
        );
        ingest::tables::write_graph_csv(out, nets.values())?;
    }
    Ok(())
}
