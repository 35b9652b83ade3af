//! `dcnet aggregate`: apply the provider rules to round logs and write global.csv.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ingest::batch::{BatchOutcome, aggregate_files};
use ingest::pipeline::{PipelineOptions, Progress, aggregate_files_columnar};
use ingest::{RejectReason, RoundStatus};

use crate::cli::{AggregateConfig, EngineArg, FormatArg};
use crate::cmd::progress;

/// Aggregates the configured logs (no output written). The duration is the aggregation's, from
/// opening the logs to the settled rounds, without reading graph.csv.
pub fn aggregate(config: &AggregateConfig) -> Result<(BatchOutcome, Duration)> {
    let nets = ingest::tables::load_graph_csv(&config.graph)?;
    let started = Instant::now();
    let outcome = match config.engine {
        EngineArg::Reference => aggregate_files(&config.logs, &nets, config.options)?,
        EngineArg::Columnar => {
            let pipeline = PipelineOptions {
                threads: config.threads,
                collect_rejects: config.rejects.is_some(),
                group_budget: config.group_memory,
                rejects_in_memory: config.rejects_in_memory,
                ..PipelineOptions::default()
            };
            let bar = Progress::default();
            progress::with_bar(&bar, config.quiet, || {
                aggregate_files_columnar(&config.logs, &nets, config.options, pipeline, &bar)
            })?
        }
    };
    Ok((outcome, started.elapsed()))
}

/// Writes `file,offset,reason` for every rejected frame, naming files by their path. The list
/// is streamed: a long one is merged from its temporary files as it is written.
pub fn write_rejects(path: &Path, outcome: &BatchOutcome) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let write = |csv: &mut csv::Writer<_>| -> Result<()> {
        csv.write_record(["file", "offset", "reason"])?;
        let names: Vec<String> = outcome
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        for reject in outcome.report.rejects.stream()? {
            let reject = reject?;
            let name = names
                .get(reject.source.file as usize)
                .map_or("", String::as_str);
            csv.write_record([
                name,
                &reject.source.offset.to_string(),
                reject.reason.name(),
            ])?;
        }
        csv.flush()?;
        Ok(())
    };
    write(&mut csv).with_context(|| format!("cannot write {}", path.display()))
}

fn write_results(out: impl Write + Send, format: FormatArg, outcome: &BatchOutcome) -> Result<()> {
    let rows = &outcome.report.rounds;
    match format {
        FormatArg::Csv => {
            ingest::tables::write_global_csv(std::io::BufWriter::new(out), outcome.lanes, rows)?
        }
        FormatArg::Parquet | FormatArg::Arrow => {
            let batch = ingest::export::global_batch(outcome.lanes, rows)?;
            let mut writer =
                ingest::export::TableWriter::new(format.table_format(), out, &batch.schema())?;
            writer.write(&batch)?;
            writer.finish()?;
        }
    }
    Ok(())
}

/// Prints what a provider operator needs to know on stderr: skipped files, rejects by reason,
/// rounds by status and privacy flags.
pub fn report(outcome: &BatchOutcome, elapsed: Duration, quiet: bool) {
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
            "privacy: net {} round {}: {} resent with too few live neighbours: {}",
            row.dc_net_id,
            row.round,
            match row.exposed.len() {
                1 => "1 client".to_string(),
                n => format!("{n} clients"),
            },
            super::list_ids(&row.exposed, 8)
        );
    }
    if exposed.len() > 10 {
        eprintln!(
            "privacy: ... and {} more flagged rounds",
            exposed.len() - 10
        );
    }
    eprintln!(
        "{} rounds: {} ok, {} unrecoverable, {} withheld, {} flagged; {} frames used, {} rejected",
        report.rounds.len(),
        count(RoundStatus::Ok),
        count(RoundStatus::Unrecoverable),
        count(RoundStatus::Withheld),
        exposed.len(),
        report.frames_kept,
        report.counts.total(),
    );
    if report.rounds_reread > 0 {
        eprintln!(
            "note: {} rounds were settled early to stay within --group-memory, got more frames \
             later and were read again; a larger --group-memory avoids that",
            report.rounds_reread
        );
    }
    if !quiet {
        let bytes: u64 = outcome.files.iter().map(|f| f.bytes).sum();
        let records: u64 = outcome.files.iter().map(|f| f.records).sum();
        eprintln!("{}", progress::throughput_line(records, bytes, elapsed));
    }
}

pub fn run(config: AggregateConfig) -> Result<()> {
    let (outcome, elapsed) = aggregate(&config)?;
    match &config.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write_results(file, config.format, &outcome)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => write_results(std::io::stdout(), config.format, &outcome)
            .context("cannot write to standard output")?,
    }
    if let Some(path) = &config.rejects {
        write_rejects(path, &outcome)?;
    }
    report(&outcome, elapsed, config.quiet);
    Ok(())
}
