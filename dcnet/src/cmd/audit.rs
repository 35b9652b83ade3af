//! `dcnet audit verify|show`: the provider's hash-chained audit trail.

use std::io::Write;

use anyhow::{Context, Result};
use engine::protocol::audit::{self, AuditError};

use crate::cli::{AuditShow, AuditVerify};

fn read_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read audit log", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

pub fn verify(config: &AuditVerify) -> Result<()> {
    let lines = read_lines(&config.file)?;
    let summary = audit::verify_chain(lines.iter().map(String::as_str), config.head.as_ref())
        .map_err(|error: AuditError| anyhow::anyhow!("{}: {error}", config.file.display()))?;
    println!(
        "{}: ok, {} entries, head {}",
        config.file.display(),
        summary.entries,
        audit::hex(&summary.head)
    );
    Ok(())
}

pub fn show(config: &AuditShow) -> Result<()> {
    let lines = read_lines(&config.file)?;
    let mut out = std::io::stdout().lock();
    for (index, text) in lines.iter().enumerate() {
        let entry = audit::parse_entry(text, index + 1)
            .map_err(|error| anyhow::anyhow!("{}: {error}", config.file.display()))?;
        let event = &entry.event;
        if config.net.is_some_and(|net| event.net() != net)
            || config
                .client
                .is_some_and(|client| !event.clients().contains(&client))
        {
            continue;
        }
        writeln!(out, "{:>8}  {event}", entry.seq)?;
    }
    Ok(())
}
