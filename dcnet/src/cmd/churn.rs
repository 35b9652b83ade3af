//! `dcnet churn`: the lifecycle protocol over many rounds, with an optional audit log.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::{Context, Result, bail};
use engine::protocol::audit::{self, AuditChain};
use engine::protocol::churn;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ChurnRun;

pub fn run(config: &ChurnRun) -> Result<()> {
    let sim = &config.sim;
    let mut log = match &config.audit {
        Some(path) => Some(AuditLog::open(path)?),
        None => None,
    };
    let progress = ProgressBar::new(u64::from(sim.rounds));
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] round {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut write_error = None;
    let report = churn::run(
        sim,
        &mut |event| {
            if let (Some(log), None) = (log.as_mut(), &write_error)
                && let Err(error) = log.append(event)
            {
                write_error = Some(error);
            }
        },
        &mut |round| progress.set_position(u64::from(round)),
    );
    progress.finish_and_clear();
    if let Some(error) = write_error {
        return Err(error);
    }
    let report = report.context("churn simulation failed")?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "dcnet churn: {} nets, {} clients each, {} rounds, seed {}",
        sim.nets, sim.clients, sim.rounds, sim.seed
    )?;
    let rows: [(&str, String); 15] = [
        ("rounds released", report.rounds_released.to_string()),
        ("rounds withheld", report.rounds_withheld.to_string()),
        (
            "rounds unrecoverable",
            report.rounds_unrecoverable.to_string(),
        ),
        ("joins", report.joins.to_string()),
        ("exits", report.exits.to_string()),
        ("losses", report.losses.to_string()),
        ("reconnects", report.reconnects.to_string()),
        ("corrections", report.corrections.to_string()),
        ("resends refused", report.resends_refused.to_string()),
        ("key exchanges refused", report.kex_refused.to_string()),
        ("shares tampered", report.shares_tampered.to_string()),
        (
            "minimum degree seen",
            report
                .min_degree_seen
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
        ),
        ("graph splits", report.graph_splits.to_string()),
        (
            "sums checked",
            format!("{} (all equal to the true readings)", report.sums_checked),
        ),
        (
            "clients at end",
            report
                .final_clients
                .iter()
                .map(|(net, n)| format!("net {net}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<24}{value}")?;
    }
    if let (Some(log), Some(path)) = (log.as_mut(), &config.audit) {
        log.flush()?;
        writeln!(
            out,
            "{:<24}{}: {} entries, head {}",
            "audit",
            path.display(),
            log.chain.len(),
            audit::hex(&log.chain.head())
        )?;
    }
    if report.graph_splits > 0 {
        bail!("the key graph split {} times", report.graph_splits);
    }
    Ok(())
}

/// An audit log file being appended to.
struct AuditLog {
    path: std::path::PathBuf,
    chain: AuditChain,
    writer: BufWriter<File>,
}

impl AuditLog {
    /// Opens `path` for appending; an existing log must verify, and the chain continues from
    /// its last entry.
    fn open(path: &std::path::Path) -> Result<Self> {
        let chain = match File::open(path) {
            Ok(file) => {
                let lines = BufReader::new(file)
                    .lines()
                    .collect::<std::io::Result<Vec<String>>>()
                    .with_context(|| format!("{}: cannot read audit log", path.display()))?;
                audit::verify_chain(lines.iter().map(String::as_str), None).with_context(|| {
                    format!("{}: refusing to extend a broken audit log", path.display())
                })?;
                match lines.last() {
                    Some(last) => AuditChain::after(&audit::parse_entry(last, lines.len())?),
                    None => AuditChain::new(),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => AuditChain::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot open", path.display()));
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open for appending", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            chain,
            writer: BufWriter::new(file),
        })
    }

    fn append(&mut self, event: engine::protocol::AuditEvent) -> Result<()> {
        let entry = self.chain.append(event);
        writeln!(self.writer, "{entry}")
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}
