//! `dcnet simulate`: write a simulated population's round logs, key graphs and truth.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dcnet::sim::{NetPlan, NetStats, SimConfig, SimSink, run_net};
use ingest::{Frame, LogError, LogWriter, RoundResult};
use rayon::prelude::*;

use crate::cli::SimulateConfig;

/// What a simulation wrote.
#[derive(Debug, Clone)]
pub struct SimSummary {
    pub graph: PathBuf,
    pub truth: PathBuf,
    pub logs: Vec<PathBuf>,
    pub stats: NetStats,
    pub elapsed: Duration,
}

struct NetSink {
    writer: LogWriter<File>,
    error: Option<LogError>,
    truth: Vec<RoundResult>,
    readings: Option<Vec<u8>>,
}

impl SimSink for NetSink {
    fn frame(&mut self, frame: &Frame) {
        if self.error.is_none() {
            if let Err(error) = self.writer.write_frame(frame) {
                self.error = Some(error);
            }
        }
    }

    fn reading(&mut self, net: u32, client: u32, round: u32, lanes: &[u64]) {
        if let Some(out) = &mut self.readings {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{net},{client},{round}");
            for lane in lanes {
                let _ = write!(out, ",{lane}");
            }
            out.push(b'\n');
        }
    }

    fn truth(&mut self, row: RoundResult) {
        self.truth.push(row);
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(path).with_context(|| {
        format!("cannot create {}", path.display())
    })?))
}

/// Runs the simulation and writes every file into `config.out`.
pub fn simulate(config: &SimulateConfig) -> Result<SimSummary> {
    let started = Instant::now();
    let sim: &SimConfig = &config.sim;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("cannot create directory {}", config.out.display()))?;
    let created_ms = dcnet::sim::round_start_ms(sim.first_round);
    let results: Vec<(NetPlan, PathBuf, NetSink, NetStats)> = (0..sim.nets)
        .into_par_iter()
        .map(|index| -> Result<_> {
            let plan = NetPlan::new(sim, index)?;
            let path = config.out.join(format!("net-{}.dclog", plan.dc_net_id));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let writer = LogWriter::new(file, sim.lanes, created_ms)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut sink = NetSink {
                writer,
                error: None,
                truth: Vec::new(),
                readings: config.reveal_readings.then(Vec::new),
            };
            let stats = run_net(sim, &plan, &mut sink);
            Ok((plan, path, sink, stats))
        })
        .collect::<Result<_>>()?;

    let graph_path = config.out.join("graph.csv");
    ingest::tables::write_graph_csv(
        create(&graph_path)?,
        results.iter().map(|(plan, ..)| &plan.graph),
    )
    .with_context(|| format!("cannot write {}", graph_path.display()))?;

    let mut stats = NetStats::default();
    let mut logs = Vec::new();
    let mut truth = Vec::new();
    let mut readings = config.reveal_readings.then(|| {
        let mut header = String::from("dc_net_id,client_id,round");
        for lane in 0..sim.lanes {
            header.push_str(&format!(",lane{lane}"));
        }
        header.push('\n');
        header.into_bytes()
    });
    for (_, path, sink, net_stats) in results {
        if let Some(error) = sink.error {
            return Err(error).with_context(|| format!("cannot write {}", path.display()));
        }
        sink.writer
            .finish_with_count()
            .with_context(|| format!("cannot write {}", path.display()))?;
        stats.merge(net_stats);
        truth.extend(sink.truth);
        if let (Some(all), Some(net)) = (&mut readings, sink.readings) {
            all.extend(net);
        }
        logs.push(path);
    }
    let truth_path = config.out.join("truth.csv");
    ingest::tables::write_global_csv(create(&truth_path)?, usize::from(sim.lanes), &truth)
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    if let Some(readings) = readings {
        let path = config.out.join("readings.csv");
        std::fs::write(&path, readings)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(SimSummary {
        graph: graph_path,
        truth: truth_path,
        logs,
        stats,
        elapsed: started.elapsed(),
    })
}

pub fn run(config: SimulateConfig) -> Result<()> {
    let summary = simulate(&config)?;
    let frames = summary.stats.transmits + summary.stats.resends;
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "simulated {} nets x {} clients x {} rounds: {} frames ({} transmit, {} resend), {} dropouts, in {:.2} s ({:.0} frames/s)",
        config.sim.nets,
        config.sim.clients,
        config.sim.rounds,
        frames,
        summary.stats.transmits,
        summary.stats.resends,
        summary.stats.dropouts,
        seconds,
        frames as f64 / seconds,
    );
    eprintln!(
        "wrote {}, {}, {} round logs in {}",
        summary.graph.display(),
        summary.truth.display(),
        summary.logs.len(),
        config.out.display()
    );
    Ok(())
}
