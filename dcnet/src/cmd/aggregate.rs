//! `dcnet aggregate`: apply the provider rules to round logs and write global.csv.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// An output file opened before the aggregation, so that a path that cannot be written fails
/// at once instead of after a run of minutes whose results would be lost. The file is not
/// truncated until the results are written, so a failed run leaves an existing file as it was,
/// and one that it created is removed again.
pub struct EarlyOutput {
    path: PathBuf,
    file: File,
    created: bool,
}

impl EarlyOutput {
    /// Opens (or creates) `path` for writing, keeping what it holds for now.
    pub fn open(path: &Path) -> Result<Self> {
        let existed = path.try_exists().unwrap_or(true);
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            created: !existed,
        })
    }

    /// The file, emptied, for the results. Only a regular file is truncated: a device such as
    /// /dev/null or a pipe has nothing to empty.
    fn into_emptied(self) -> Result<File> {
        let is_file = self.file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if is_file {
            self.file
                .set_len(0)
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(self.file)
    }

    /// [`Self::discard`] for each output that was opened.
    fn discard_all<const N: usize>(outputs: [Option<Self>; N]) {
        for output in outputs.into_iter().flatten() {
            output.discard();
        }
    }

    /// Removes the file again if this run created it (the run failed).
    fn discard(self) {
        if self.created {
            drop(self.file);
            // Best effort: the run's own error is what the user needs to see.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `file,offset,reason` for every rejected frame, naming files by their path. The list
/// is streamed: a long one is merged from its temporary files as it is written.
pub fn write_rejects(output: EarlyOutput, outcome: &BatchOutcome) -> Result<()> {
    let path = output.path.clone();
    let file = output.into_emptied()?;
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
    // Both outputs are opened before the run, so that a mistyped path costs a second, not the
    // aggregation; should anything then fail before the results exist, what this run created
    // is removed again.
    let out = config.out.as_deref().map(EarlyOutput::open).transpose()?;
    let rejects = match config.rejects.as_deref().map(EarlyOutput::open).transpose() {
        Ok(rejects) => rejects,
        Err(error) => {
            EarlyOutput::discard_all([out]);
            return Err(error);
        }
    };
    let (outcome, elapsed) = match aggregate(&config) {
        Ok(done) => done,
        Err(error) => {
            EarlyOutput::discard_all([out, rejects]);
            return Err(error);
        }
    };
    match out {
        Some(output) => {
            let path = output.path.clone();
            write_results(output.into_emptied()?, config.format, &outcome)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => write_results(std::io::stdout(), config.format, &outcome)
            .context("cannot write to standard output")?,
    }
    if let Some(output) = rejects {
        write_rejects(output, &outcome)?;
    }
    report(&outcome, elapsed, config.quiet);
    Ok(())
}
