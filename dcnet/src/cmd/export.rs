//! `dcnet export`: round logs as a Parquet, Arrow IPC or CSV table of validated frames.

use std::time::Instant;

use anyhow::{Context, Result};
use ingest::pipeline::Progress;

use crate::cli::ExportArgs;
use crate::cmd::progress;

pub fn run(args: ExportArgs) -> Result<()> {
    let started = Instant::now();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let bar = Progress::default();
    let outcome = progress::with_bar(&bar, args.quiet, || {
        ingest::export::export_frames(&args.logs, args.format.table_format(), out, &bar)
    })
    .with_context(|| format!("cannot export to {}", args.out.display()))?;
    for file in &outcome.files {
        if let Some(error) = &file.error {
            eprintln!("skipped {error}");
        }
    }
    if outcome.rejects.total() > 0 {
        eprintln!(
            "{} stretches are not valid frames and were not exported:",
            outcome.rejects.total()
        );
        for (reason, n) in ingest::export::reject_lines(&outcome.rejects) {
            eprintln!("  {:<34} {:>10}  {}", reason.name(), n, reason.describe());
        }
    }
    eprintln!(
        "wrote {} frames ({} lanes) to {} as {}",
        outcome.frames,
        outcome.lanes,
        args.out.display(),
        args.format.table_format().name()
    );
    if !args.quiet {
        let bytes: u64 = outcome.files.iter().map(|f| f.bytes).sum();
        let records: u64 = outcome.files.iter().map(|f| f.records).sum();
        eprintln!(
            "{}",
            progress::throughput_line(records, bytes, started.elapsed())
        );
    }
    Ok(())
}
