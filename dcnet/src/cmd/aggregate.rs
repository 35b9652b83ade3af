//! `dcnet aggregate`: apply the provider rules to round logs and write global.csv.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ingest::batch::{BatchOutcome, aggregate_files};
use ingest::{RejectReason, RoundStatus};

use crate::cli::AggregateConfig;

/// Aggregates the configured logs (no output written).
pub fn aggregate(config: &AggregateConfig) -> Result<(BatchOutcome, Duration)> {
    let started = Instant::now();
    let nets = ingest::tables::load_graph_csv(&config.graph)?;
    let outcome = aggregate_files(&config.logs, &nets, config.options)?;
    Ok((outcome, started.elapsed()))
}

/// Prints what a provider operator needs to know on stderr: skipped files, rejects by reason,
/// rounds by status and privacy flags.
pub fn report(outcome: &BatchOutcome, elapsed: Duration) {
    for file in &outcome.files {
        if let Some(error) = &file.error {
            eprintln!("skipped {error}");
        } else if let Some(header) = file.header
            && usize::from(header.lanes) != outcome.lanes
        {
            eprintln!(
                "warning: {} has {} lanes, the aggregation {}; its frames are rejected as bad-lanes",
                file.path.display(),
                header.lanes,
                outcome.lanes
            );
        }
    }
    let report = &outcome.report;
    if report.counts.total() > 0 {
        eprintln!("rejected {} frames:", report.counts.total());
        for reason in RejectReason::ALL {
            let n = report.counts.get(reason);
            if n > 0 {
                eprintln!("  {:<34} {:>10}  {}", reason.name(), n, reason.describe());
            }
        }
    }
    let count = |status| report.rounds.iter().filter(|r| r.status == status).count();
    let exposed: Vec<_> = report
        .rounds
        .iter()
        .filter(|r| !r.exposed.is_empty())
        .collect();
    for row in exposed.iter().take(10) {
        eprintln!(
            "privacy: net {} round {}: clients {:?} resent with too few live neighbours",
            row.dc_net_id, row.round, row.exposed
        );
    }
    if exposed.len() > 10 {
        eprintln!(
            "privacy: ... and {} more flagged rounds",
            exposed.len() - 10
        );
    }
    let bytes: u64 = outcome.files.iter().map(|f| f.bytes).sum();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "{} rounds: {} ok, {} unrecoverable, {} withheld, {} flagged; {} frames used, {} rejected; {:.2} s, {:.0} frames/s, {:.2} GB/s",
        report.rounds.len(),
        count(RoundStatus::Ok),
        count(RoundStatus::Unrecoverable),
        count(RoundStatus::Withheld),
        exposed.len(),
        report.frames_kept,
        report.counts.total(),
        seconds,
        (report.frames_kept + report.counts.total()) as f64 / seconds,
        bytes as f64 / seconds / 1e9,
    );
}

pub fn run(config: AggregateConfig) -> Result<()> {
    let (outcome, elapsed) = aggregate(&config)?;
    let rows = &outcome.report.rounds;
    match &config.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            ingest::tables::write_global_csv(std::io::BufWriter::new(file), outcome.lanes, rows)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout().lock();
            ingest::tables::write_global_csv(std::io::BufWriter::new(stdout), outcome.lanes, rows)
                .context("cannot write to standard output")?;
        }
    }
    report(&outcome, elapsed);
    Ok(())
}
