//! `dcnet bench simulate`: the simulator against `dd` writing the same number of bytes to the
//! same file system, in the same run.
//!
//! Both write their files, are timed, and their files are deleted again before the next step,
//! so a tmpfs never holds more than one of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::si;
use crate::cli::{BenchSimulateConfig, SimulateConfig};
use crate::cmd::simulate;

/// CPU time of this process and of its waited-for children, from `/proc/self/stat` (Linux).
fn process_cpu_times() -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3 of proc(5), so utime (14), stime (15), cutime (16), cstime (17) are 11..=14 here.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    // USER_HZ is 100 on every Linux configuration the kernel supports for these fields.
    let ticks = |a: u64, b: u64| Duration::from_millis((a + b) * 10);
    Some((ticks(tick(11)?, tick(12)?), ticks(tick(13)?, tick(14)?)))
}

fn directory_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        total += entry
            .metadata()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?
            .len();
    }
    Ok(total)
}

/// One timed step: wall time and CPU time (the process's own or its children's).
struct Timed {
    wall: Duration,
    cpu: Option<Duration>,
}

fn cpu_text(cpu: Option<Duration>) -> String {
    cpu.map_or_else(
        || "CPU n/a".to_owned(),
        |c| format!("CPU {:.2} s", c.as_secs_f64()),
    )
}

const DD_BLOCK: u64 = 4 << 20;

fn run_dd(file: &Path, bytes: u64) -> Result<Timed> {
    let count = bytes.div_ceil(DD_BLOCK);
    let before = process_cpu_times();
    let started = Instant::now();
    let output = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=4M")
        .arg(format!("count={count}"))
        .output()
        .context("cannot run dd")?;
    let wall = started.elapsed();
    let after = process_cpu_times();
    let removed = std::fs::remove_file(file);
    if !output.status.success() {
        bail!(
            "dd failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    removed.with_context(|| format!("cannot remove {}", file.display()))?;
    Ok(Timed {
        wall,
        cpu: before
            .zip(after)
            .map(|((_, a), (_, b))| b.saturating_sub(a)),
    })
}

pub fn run(config: BenchSimulateConfig) -> Result<()> {
    ensure!(
        config.dir.is_dir(),
        "--dir {}: no such directory",
        config.dir.display()
    );
    let pid = std::process::id();
    let sim_dir: PathBuf = config.dir.join(format!("dcnet-bench-simulate-{pid}"));
    let dd_file: PathBuf = config.dir.join(format!("dcnet-bench-dd-{pid}"));
    ensure!(
        !sim_dir.exists() && !dd_file.exists(),
        "{} or {} already exists; not overwriting it",
        sim_dir.display(),
        dd_file.display()
    );
    let sim = &config.sim;
    println!(
        "dcnet bench simulate: {} nets x {} clients x {} rounds (k = {}, {} lane, dropout {}) into {}, against dd if=/dev/zero bs=4M writing as many bytes there; {} threads",
        sim.nets,
        sim.clients,
        sim.rounds,
        sim.degree,
        sim.lanes,
        sim.dropout,
        config.dir.display(),
        rayon::current_num_threads()
    );
    let mut ratios = Vec::new();
    for run in 1..=config.repeat {
        let before = process_cpu_times();
        let started = Instant::now();
        let result = simulate::simulate(&SimulateConfig {
            out: sim_dir.clone(),
            sim: sim.clone(),
            reveal_readings: false,
        });
        let wall = started.elapsed();
        let after = process_cpu_times();
        let bytes = directory_bytes(&sim_dir);
        let removed = std::fs::remove_dir_all(&sim_dir);
        let summary = result?;
        let bytes = bytes?;
        removed.with_context(|| format!("cannot remove {}", sim_dir.display()))?;
        let simulated = Timed {
            wall,
            cpu: before
                .zip(after)
                .map(|((a, _), (b, _))| b.saturating_sub(a)),
        };
        let dd = run_dd(&dd_file, bytes)?;
        let frames = summary.stats.transmits + summary.stats.resends;
        let ratio = simulated.wall.as_secs_f64() / dd.wall.as_secs_f64().max(1e-9);
        ratios.push(ratio);
        println!(
            "run {run}: simulate {} frames, {:.2} GB in {:.2} s ({}frames/s, {:.2} GB/s, {}); dd {:.2} GB in {:.2} s ({:.2} GB/s, {}); simulate/dd = {:.2}",
            frames,
            bytes as f64 / 1e9,
            simulated.wall.as_secs_f64(),
            si(frames as f64 / simulated.wall.as_secs_f64().max(1e-9)),
            bytes as f64 / 1e9 / simulated.wall.as_secs_f64().max(1e-9),
            cpu_text(simulated.cpu),
            (bytes.div_ceil(DD_BLOCK) * DD_BLOCK) as f64 / 1e9,
            dd.wall.as_secs_f64(),
            (bytes.div_ceil(DD_BLOCK) * DD_BLOCK) as f64 / 1e9 / dd.wall.as_secs_f64().max(1e-9),
            cpu_text(dd.cpu),
            ratio
        );
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!(
            "median simulate/dd over {} run(s): {median:.2} (target: at most 1.5)",
            ratios.len()
        );
    }
    Ok(())
}
