//! `dcnet inspect`: describe one round log.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use ingest::log::LOG_HEADER_LEN;
use ingest::{FrameScanner, Notification, RejectCounts, RejectReason};

use crate::cli::InspectArgs;

#[derive(Default)]
struct NetSummary {
    frames: u64,
    rounds: BTreeSet<u32>,
    clients: BTreeSet<u32>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let path = &args.log;
    let bytes =
        ingest::mmap::open_log(path).with_context(|| format!("cannot read {}", path.display()))?;
    let scanner = FrameScanner::new(&bytes).with_context(|| format!("{}", path.display()))?;
    let header = scanner.header();
    let mut by_notification: BTreeMap<Notification, u64> = BTreeMap::new();
    let mut nets: BTreeMap<u32, NetSummary> = BTreeMap::new();
    let mut rejects = RejectCounts::default();
    let mut first_reject = None;
    let mut valid = 0u64;
    for scanned in scanner {
        match scanned.frame {
            Ok(frame) => {
                valid += 1;
                *by_notification.entry(frame.notification()).or_default() += 1;
                let net = nets.entry(frame.dc_net_id()).or_default();
                net.frames += 1;
                net.rounds.insert(frame.round());
                net.clients.insert(frame.client_id());
            }
            Err(error) => {
                rejects.add(RejectReason::from(error));
                first_reject.get_or_insert((scanned.offset, error));
            }
        }
    }
    println!("file          {}", path.display());
    println!(
        "size          {} bytes ({} header + {} frame bytes)",
        bytes.len(),
        LOG_HEADER_LEN,
        bytes.len().saturating_sub(LOG_HEADER_LEN)
    );
    println!(
        "format        round log v1, {} lanes, {}-byte frames",
        header.lanes,
        header.frame_len()
    );
    println!("created       {} ms since the epoch", header.created_ms);
    let declared = if header.frame_count == 0 {
        "unknown (0)".to_owned()
    } else {
        header.frame_count.to_string()
    };
    println!("frame count   {declared} in the header, {valid} valid frames found");
    if header.frame_count != 0 && header.frame_count != valid + rejects.total() {
        println!("warning       the header's frame count differs from the frames in the file");
    }
    println!("notifications");
    for notification in Notification::ALL {
        println!(
            "  {:<12}{:>12}",
            notification.name(),
            by_notification.get(&notification).copied().unwrap_or(0)
        );
    }
    println!("nets          {}", nets.len());
    for (net, summary) in &nets {
        let (first, last) = (
            summary.rounds.first().copied().unwrap_or(0),
            summary.rounds.last().copied().unwrap_or(0),
        );
        println!(
            "  net {net:<8} {:>10} frames, {:>6} clients, {:>6} rounds ({first}..={last})",
            summary.frames,
            summary.clients.len(),
            summary.rounds.len()
        );
    }
    println!("rejects       {}", rejects.total());
    for (reason, n) in rejects.iter() {
        println!("  {:<34}{:>10}  {}", reason.name(), n, reason.describe());
    }
    if let Some((offset, error)) = first_reject {
        println!("first reject  at byte {offset}: {error}");
    }
    Ok(())
}
