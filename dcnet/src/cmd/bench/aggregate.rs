//! `dcnet bench aggregate`: the end-to-end columnar aggregation against a memory-read floor.
//!
//! The floor is the least any reader of the log must do: one pass over the same mapped bytes,
//! touching and adding every u64 word, on the same number of threads. Both measurements map the
//! file afresh, so both pay the same page-table cost; the file is in the page cache (it was just
//! written or read), so neither waits for the disk. The ratio aggregate/floor says how close
//! validating, decoding, grouping and summing get to merely reading memory.
//!
//! Two more measurements in the same run place the aggregate between the two: the checked
//! floor, a pass that makes every per-frame check DESIGN §5 needs no state for (header fields
//! and CRC) and sums lane 0, which says what validation alone costs; and the aggregate without
//! read-ahead hints ([`ingest::pipeline::PipelineOptions::read_ahead`] 0), the baseline for
//! the one `unsafe` block whose reason is speed ([`ingest::mmap::prefetch`]). With
//! `--interleave`, a third aggregate reads the log morsel by morsel instead of in windows
//! partitioned by net ([`ingest::pipeline::PipelineOptions::window_morsels`] 0).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dcnet::sim::{NetPlan, SimConfig, SimSink, run_net};
use ingest::columnar::DEFAULT_MORSEL_FRAMES;
use ingest::frame::{FRAME_HEADER_LEN, FrameFields, RawHeader};
use ingest::log::{LOG_HEADER_LEN, LogHeader};
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

/// Rewrites the log at `path` round by round, the frames of each round in a random order
/// (a fixed seed), so that the nets are interleaved as in a collector's log.
fn interleave_log(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = LogHeader::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    let frame_len = header.frame_len();
    let body = bytes.get(LOG_HEADER_LEN..).unwrap_or_default();
    let frames: Vec<&[u8]> = body.chunks_exact(frame_len).collect();
    // A random key per frame (xorshift, to need no randomness crate here), then round order.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut order: Vec<(u32, u64, u32)> = frames
        .iter()
        .enumerate()
        .map(|(index, frame)| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (RawHeader::of(frame).round(), state, index as u32)
        })
        .collect();
    order.sort_unstable();
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    out.write_all(&bytes[..LOG_HEADER_LEN])?;
    for &(_, _, index) in &order {
        out.write_all(frames[index as usize])?;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
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

/// One pass over the mapped log that checks every frame's header and CRC, as the morsel reader
/// does before decoding, and sums lane 0: the per-frame validation without decoding, grouping
/// or the rules between frames. Returns the sum and the number of frames that failed a check.
fn checked_floor(
    path: &Path,
    pool: &rayon::ThreadPool,
    read_ahead: usize,
) -> Result<(u64, u64, Duration)> {
    let started = Instant::now();
    let bytes =
        ingest::mmap::open_log(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = LogHeader::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    let frame_len = header.frame_len();
    let body = bytes.get(LOG_HEADER_LEN..).unwrap_or_default();
    let body = &body[..body.len() / frame_len * frame_len];
    // The first eight bytes of a well-formed frame with the notification byte masked out and
    // the flags' transmission bit cleared: "DC", version 1, the log's lanes, reserved zero.
    let base = u64::from_le_bytes([b'D', b'C', 1, 0, 0, header.lanes, 0, 0]);
    let mask = u64::from_le_bytes([0xFF, 0xFF, 0xFF, 0, 0xFE, 0xFF, 0xFF, 0xFF]);
    const BLOCK: usize = 64;
    let (sum, bad) = pool.install(|| {
        body.par_chunks(frame_len * DEFAULT_MORSEL_FRAMES)
            .map(|morsel| {
                let (mut sum, mut bad) = (0u64, 0u64);
                let mut crcs = [0u32; BLOCK];
                for (k, block) in morsel.chunks(frame_len * BLOCK).enumerate() {
                    let ahead = (k * frame_len * BLOCK + read_ahead).min(morsel.len());
                    let to = (ahead + block.len()).min(morsel.len());
                    ingest::mmap::prefetch(&morsel[ahead..to]);
                    let frames = block.len() / frame_len;
                    ingest::crc::frame_crcs(block, frame_len, &mut crcs[..frames]);
                    for (frame, &crc) in block.chunks_exact(frame_len).zip(&crcs) {
                        let raw = RawHeader::of(frame);
                        let mut word = [0u8; 8];
                        word.copy_from_slice(&frame[..8]);
                        let code = frame[3];
                        let good = u64::from_le_bytes(word) & mask == base
                            && (1..=5).contains(&code)
                            && raw.crc32c() == crc;
                        bad += u64::from(!good);
                        let mut lane = [0u8; 8];
                        lane.copy_from_slice(&frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + 8]);
                        sum = sum.wrapping_add(u64::from_le_bytes(lane));
                    }
                }
                (sum, bad)
            })
            .reduce(|| (0, 0), |a, b| (a.0.wrapping_add(b.0), a.1 + b.1))
    });
    let elapsed = started.elapsed();
    drop(bytes);
    Ok((std::hint::black_box(sum), bad, elapsed))
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
        "bench-{}x{}x{}-L{}{}.dclog",
        sim.nets,
        sim.clients,
        sim.rounds,
        sim.lanes,
        if config.interleave {
            "-interleaved"
        } else {
            ""
        }
    ));
    eprintln!(
        "writing {} nets x {} clients x {} rounds, {} lane(s), 1% dropouts{} to {}",
        sim.nets,
        sim.clients,
        sim.rounds,
        sim.lanes,
        if config.interleave {
            ", nets interleaved"
        } else {
            ""
        },
        path.display()
    );
    let started = Instant::now();
    let (nets, truth, frames) = write_log(sim, &path)?;
    if config.interleave {
        interleave_log(&path)?;
    }
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
    // A log of interleaved nets is also aggregated morsel by morsel, without windows: the
    // baseline of the windows partitioned by net (`ingest::window`).
    let windows = config.interleave;
    println!(
        "run  floor frames/s  floor GB/s  checked frames/s  aggregate frames/s  aggregate GB/s  \
         no read-ahead frames/s  aggregate/floor{}",
        if windows { "  no windows frames/s" } else { "" }
    );
    let timed_aggregate = |pipeline: PipelineOptions| -> Result<Duration> {
        let started = Instant::now();
        let outcome = aggregate_files_columnar(
            std::slice::from_ref(&path),
            &nets,
            options,
            pipeline,
            &Progress::default(),
        )?;
        let elapsed = started.elapsed();
        std::hint::black_box(&outcome);
        Ok(elapsed)
    };
    let no_read_ahead = PipelineOptions {
        read_ahead: 0,
        ..pipeline
    };
    let no_windows = PipelineOptions {
        window_morsels: 0,
        ..pipeline
    };
    let (mut ratios, mut checked_ratios, mut read_ahead_gains, mut window_gains) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=config.repeat {
        let (_, floor_time) = floor(&path, &pool)?;
        let (_, bad, checked_time) = checked_floor(&path, &pool, pipeline.read_ahead)?;
        ensure!(
            bad == 0,
            "the checked floor found {bad} bad frames in the simulated log"
        );
        // The two aggregates alternate which goes first, so neither always runs second.
        let (aggregate_time, plain_time) = if run % 2 == 1 {
            let a = timed_aggregate(pipeline)?;
            (a, timed_aggregate(no_read_ahead)?)
        } else {
            let p = timed_aggregate(no_read_ahead)?;
            (timed_aggregate(pipeline)?, p)
        };
        let unwindowed_time = if windows {
            Some(timed_aggregate(no_windows)?)
        } else {
            None
        };
        let rate = |t: Duration| frames as f64 / t.as_secs_f64();
        let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
        let ratio = floor_time.as_secs_f64() / aggregate_time.as_secs_f64();
        ratios.push(ratio);
        checked_ratios.push(floor_time.as_secs_f64() / checked_time.as_secs_f64());
        read_ahead_gains.push(plain_time.as_secs_f64() / aggregate_time.as_secs_f64());
        let unwindowed = match unwindowed_time {
            Some(t) => {
                window_gains.push(t.as_secs_f64() / aggregate_time.as_secs_f64());
                format!("  {:>18.1}M", rate(t) / 1e6)
            }
            None => String::new(),
        };
        println!(
            "{run:>3}  {:>14.1}M  {:>10.2}  {:>16.1}M  {:>18.1}M  {:>14.2}  {:>22.1}M  {:>15.0}%{unwindowed}",
            rate(floor_time) / 1e6,
            gbps(floor_time),
            rate(checked_time) / 1e6,
            rate(aggregate_time) / 1e6,
            gbps(aggregate_time),
            rate(plain_time) / 1e6,
            ratio * 100.0
        );
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let best = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "aggregate/floor: median {:.0}%, best {:.0}% over {} runs; checked floor/floor: median {:.0}%; \
         read-ahead speed-up: median {:.2}x",
        median(&mut ratios) * 100.0,
        best * 100.0,
        ratios.len(),
        median(&mut checked_ratios) * 100.0,
        median(&mut read_ahead_gains)
    );
    if windows {
        println!(
            "windows partitioned by net: median speed-up {:.2}x over morsel by morsel",
            median(&mut window_gains)
        );
    }
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
