//! `dcnet demo`: simulate a population, aggregate its logs and check every total.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use ingest::RoundStatus;

use crate::cli::{AggregateConfig, DemoConfig, EngineArg, FormatArg, SimulateConfig};
use crate::cmd::{aggregate, simulate};

pub fn run(config: DemoConfig) -> Result<()> {
    let started = Instant::now();
    let temp;
    let dir = match &config.out {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let sim = &config.sim;
    eprintln!(
        "simulating {} nets x {} clients x {} rounds (k = {}, dropout {}, seed {}) in {}",
        sim.nets,
        sim.clients,
        sim.rounds,
        sim.degree,
        sim.dropout,
        sim.seed,
        dir.display()
    );
    let summary = simulate::simulate(&SimulateConfig {
        out: dir.clone(),
        sim: sim.clone(),
        reveal_readings: false,
    })?;
    let aggregate_config = AggregateConfig {
        graph: summary.graph.clone(),
        out: None,
        options: ingest::AggregateOptions {
            min_participants: sim.min_participants,
            ..Default::default()
        },
        rejects: None,
        format: FormatArg::Csv,
        threads: 0,
        engine: EngineArg::Columnar,
        group_memory: ingest::fast::DEFAULT_BUDGET,
        rejects_in_memory: ingest::spill::DEFAULT_REJECTS_IN_MEMORY,
        quiet: true,
        logs: summary.logs.clone(),
    };
    let (outcome, aggregate_time) = aggregate::aggregate(&aggregate_config)?;
    let truth = ingest::tables::load_global_csv(&summary.truth)?;
    let rows = &outcome.report.rounds;
    let mut matched = 0;
    let mut mismatched = Vec::new();
    for (got, want) in rows.iter().zip(&truth) {
        let same = (
            got.dc_net_id,
            got.round,
            got.expected,
            got.present,
            got.resent,
            got.status,
            &got.sum,
        ) == (
            want.dc_net_id,
            want.round,
            want.expected,
            want.present,
            want.resent,
            want.status,
            &want.sum,
        );
        if same {
            matched += 1;
        } else {
            mismatched.push((got.dc_net_id, got.round));
        }
    }
    let released = rows.iter().filter(|r| r.status == RoundStatus::Ok).count();
    let frames = summary.stats.transmits + summary.stats.resends;
    println!("nets              {}", sim.nets);
    println!(
        "clients           {} ({} per net, k = {})",
        u64::from(sim.nets) * u64::from(sim.clients),
        sim.clients,
        sim.degree
    );
    println!(
        "rounds            {} per net, {} (net, round) groups",
        sim.rounds,
        rows.len()
    );
    println!(
        "frames            {} ({} transmit, {} resend)",
        frames, summary.stats.transmits, summary.stats.resends
    );
    println!(
        "dropouts          {} client-rounds missed, corrected by {} resends",
        summary.stats.dropouts,
        outcome
            .report
            .rounds
            .iter()
            .map(|r| r.resent)
            .sum::<usize>()
    );
    println!("released          {released} of {} rounds", rows.len());
    println!("rejected frames   {}", outcome.report.counts.total());
    println!(
        "totals matched    {matched} of {} against the simulation's truth",
        truth.len()
    );
    println!(
        "time              {:.2} s (simulate {:.2} s, aggregate {:.2} s)",
        started.elapsed().as_secs_f64(),
        summary.elapsed.as_secs_f64(),
        aggregate_time.as_secs_f64()
    );
    if let Some(first) = rows.iter().find(|r| r.status == RoundStatus::Ok)
        && let Some(sum) = &first.sum
    {
        println!(
            "example           net {} round {}: {} households imported {:.1} kWh in 15 minutes",
            first.dc_net_id,
            first.round,
            first.present,
            sum[0] as f64 / 1000.0
        );
    }
    if !mismatched.is_empty() || rows.len() != truth.len() || outcome.report.counts.total() != 0 {
        bail!(
            "aggregation disagrees with the truth: {} of {} rounds differ (first: {:?}), {} rows vs {} expected",
            mismatched.len(),
            truth.len(),
            mismatched.first(),
            rows.len(),
            truth.len()
        );
    }
    println!("OK: every released total equals the sum of the households' readings");
    Ok(())
}
