//! Command-line arguments (clap derive) and their validation into configs.
//!
//! Every subcommand's arguments are declared here and turned into a validated config; the
//! `cmd` modules only ever see configs, so a bad flag fails before any work starts, with a
//! one-line message naming the flag.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use dcnet::sim::{SimConfig, first_round_of_day};
use engine::protocol::audit::parse_hash;
use engine::protocol::churn::ChurnConfig;
use engine::protocol::{GatewayConfig, ProviderConfig};
use ingest::AggregateOptions;

/// Privacy-preserving smart-meter aggregation with DC-nets.
///
/// Gateways mask each 15-minute reading with pairwise keys shared with their neighbours in a
/// key graph; the provider adds all masked frames, the keys cancel, and only the exact total of
/// each DC net remains.
#[derive(Debug, Parser)]
#[command(
    name = "dcnet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate households' gateways in DC nets and write their round logs.
    ///
    /// Writes DIR/graph.csv (key graphs), one round log per net (DIR/net-<id>.dclog, transmit
    /// frames of present clients and resend frames of the present neighbours of missing
    /// clients), DIR/truth.csv (the global.csv a correct provider must produce) and, with
    /// --reveal-readings, DIR/readings.csv (the plaintext readings behind the logs).
    Simulate(SimulateArgs),
    /// Aggregate round logs into each net's per-round totals (global.csv).
    ///
    /// Applies the provider rules of DESIGN §5: transmit frames of roster clients, resend frames
    /// replacing the transmit frames of present neighbours of missing clients, and exact
    /// wrapping sums. Rounds are `ok`, `unrecoverable` (a needed resend is missing) or
    /// `withheld` (fewer present clients than --min-participants). Frames that are not used are
    /// counted by reason on stderr.
    Aggregate(AggregateArgs),
    /// Describe a round log: header, frame counts, nets and rounds present, rejects by reason.
    Inspect(InspectArgs),
    /// Simulate a population, aggregate it and check every total against the truth.
    Demo(DemoArgs),
    /// Run providers and gateways in process over many rounds with random joins, exits and
    /// connection losses; check every released sum against the true readings.
    Churn(ChurnArgs),
    /// Check or list the provider's hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Analyse key graphs.
    #[command(subcommand)]
    Graph(GraphCommand),
}

/// The population and schedule of a simulation.
#[derive(Debug, Args)]
pub struct PopulationArgs {
    /// Number of DC nets (ids 1..=N).
    #[arg(long, default_value_t = 4)]
    pub nets: u32,
    /// Clients (households) per net; ids are random, not contiguous.
    #[arg(long, default_value_t = 100)]
    pub clients: u32,
    /// Minimum neighbours of every client in the key graph (k >= 3).
    #[arg(long, default_value_t = 4)]
    pub degree: usize,
    /// Rounds (15-minute intervals) to simulate; 96 is one day.
    #[arg(long, default_value_t = 96)]
    pub rounds: u32,
    /// Lanes per frame (1..=32). Lane 0: Wh imported in the interval; lane 1: Wh exported
    /// (rooftop PV); lane 2: 1 per household (counts reporters); lane 3: imported Wh squared
    /// (for the variance across households); further lanes are 0.
    #[arg(long, default_value_t = 1)]
    pub lanes: u8,
    /// Probability that a client misses a round (0 <= p < 1).
    #[arg(long, default_value_t = 0.01)]
    pub dropout: f64,
    /// Simulation seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First simulated day (UTC), YYYY-MM-DD; round numbers are quarter hours since the epoch.
    #[arg(long, default_value = "2026-01-12")]
    pub start: String,
    /// Minimum present clients for a released sum (truth.csv says `withheld` below it).
    #[arg(long, default_value_t = 2)]
    pub min_participants: usize,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub population: PopulationArgs,
    /// Also write DIR/readings.csv with the plaintext readings (simulation only: a real
    /// provider never has them).
    #[arg(long)]
    pub reveal_readings: bool,
}

#[derive(Debug, Args)]
pub struct AggregateArgs {
    /// The key graphs: graph.csv with rows `dc_net_id,client_a,client_b`; a net's roster is
    /// every client in its edges.
    #[arg(long, value_name = "FILE")]
    pub graph: PathBuf,
    /// Where to write global.csv (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Withhold a round's sum when fewer clients than this are present (at least 2).
    #[arg(long, default_value_t = 2, value_name = "M")]
    pub min_participants: usize,
    /// Flag rounds where a resending client keeps fewer live neighbours than this: its
    /// correction would expose too much of its reading.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub min_live_neighbours: usize,
    /// Round logs (*.dclog) to aggregate; `-` reads standard input.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The round log to describe; `-` reads standard input.
    #[arg(value_name = "LOG")]
    pub log: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the simulated files in DIR (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub population: PopulationArgs,
}

/// A validated `simulate`.
#[derive(Debug, Clone)]
pub struct SimulateConfig {
    pub out: PathBuf,
    pub sim: SimConfig,
    pub reveal_readings: bool,
}

/// A validated `aggregate`.
#[derive(Debug, Clone)]
pub struct AggregateConfig {
    pub graph: PathBuf,
    pub out: Option<PathBuf>,
    pub options: AggregateOptions,
    pub logs: Vec<PathBuf>,
}

/// A validated `demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub out: Option<PathBuf>,
    pub sim: SimConfig,
}

fn parse_date(text: &str) -> Result<(i64, u32, u32)> {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        bail!("--start {text:?}: expected a date YYYY-MM-DD");
    };
    let year: i64 = year
        .parse()
        .with_context(|| format!("--start {text:?}: bad year"))?;
    let month: u32 = month
        .parse()
        .with_context(|| format!("--start {text:?}: bad month"))?;
    let day: u32 = day
        .parse()
        .with_context(|| format!("--start {text:?}: bad day"))?;
    ensure!(
        (1970..=9999).contains(&year),
        "--start {text:?}: year must be 1970..=9999"
    );
    ensure!(
        (1..=12).contains(&month),
        "--start {text:?}: month must be 1..=12"
    );
    let (y, m, d) = engine::loadprofile::civil_from_days(engine::loadprofile::days_from_civil(
        year, month, day,
    ));
    ensure!(
        (y, m, d) == (year, month, day),
        "--start {text:?}: no such day"
    );
    Ok((year, month, day))
}

impl PopulationArgs {
    fn into_config(self) -> Result<SimConfig> {
        ensure!(self.nets >= 1, "--nets must be at least 1");
        ensure!(
            self.clients >= 2,
            "--clients must be at least 2 (a DC net needs two clients)"
        );
        ensure!(
            self.degree >= engine::graph::MIN_DEGREE,
            "--degree {} is below the minimum of 3 neighbours per client",
            self.degree
        );
        ensure!(
            (self.clients as usize) > self.degree,
            "--clients {} is too few for --degree {}: every client needs {} distinct neighbours",
            self.clients,
            self.degree,
            self.degree
        );
        ensure!(self.rounds >= 1, "--rounds must be at least 1");
        ensure!(
            (1..=32).contains(&self.lanes),
            "--lanes must be 1..=32, not {}",
            self.lanes
        );
        ensure!(
            (0.0..1.0).contains(&self.dropout),
            "--dropout must be a probability in [0, 1), not {}",
            self.dropout
        );
        ensure!(
            self.min_participants >= 2,
            "--min-participants must be at least 2"
        );
        let (year, month, day) = parse_date(&self.start)?;
        let first_round = first_round_of_day(year, month, day);
        ensure!(
            first_round.checked_add(self.rounds).is_some(),
            "--rounds {} runs past the last round number",
            self.rounds
        );
        Ok(SimConfig {
            nets: self.nets,
            clients: self.clients,
            degree: self.degree,
            rounds: self.rounds,
            lanes: self.lanes,
            dropout: self.dropout,
            seed: self.seed,
            first_round,
            min_participants: self.min_participants,
        })
    }
}

impl SimulateArgs {
    pub fn into_config(self) -> Result<SimulateConfig> {
        Ok(SimulateConfig {
            out: self.out,
            sim: self.population.into_config()?,
            reveal_readings: self.reveal_readings,
        })
    }
}

impl AggregateArgs {
    pub fn into_config(self) -> Result<AggregateConfig> {
        ensure!(
            self.min_participants >= 2,
            "--min-participants must be at least 2"
        );
        Ok(AggregateConfig {
            graph: self.graph,
            out: self.out,
            options: AggregateOptions {
                min_participants: self.min_participants,
                min_live_neighbours: self.min_live_neighbours,
            },
            logs: self.logs,
        })
    }
}

impl DemoArgs {
    pub fn into_config(self) -> Result<DemoConfig> {
        Ok(DemoConfig {
            out: self.out,
            sim: self.population.into_config()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(args: &[&str]) -> Result<SimConfig> {
        let mut argv = vec!["dcnet", "demo"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Demo(demo) => Ok(demo.into_config()?.sim),
            _ => unreachable!("parsed demo"),
        }
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let sim = population(&[]).unwrap();
        assert_eq!(
            (
                sim.nets,
                sim.clients,
                sim.degree,
                sim.rounds,
                sim.lanes,
                sim.seed
            ),
            (4, 100, 4, 96, 1, 42)
        );
        assert!((sim.dropout - 0.01).abs() < 1e-12);
        // 2026-01-12 is day 20,465 since the epoch: 20,465 · 96 quarter hours.
        assert_eq!(sim.first_round, 20_465 * 96);
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--degree", "2"][..], "--degree"),
            (&["--clients", "4", "--degree", "4"], "--clients"),
            (&["--lanes", "33"], "--lanes"),
            (&["--dropout", "1.0"], "--dropout"),
            (&["--start", "2026-02-30"], "--start"),
            (&["--start", "yesterday"], "--start"),
            (&["--nets", "0"], "--nets"),
        ] {
            let error = population(args).unwrap_err().to_string();
            assert!(error.contains(flag), "{args:?}: {error}");
        }
    }
}

/// `dcnet churn`.
#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// Number of DC nets (ids 1..=N).
    #[arg(long, default_value_t = 2)]
    pub nets: u32,
    /// Clients registered in each net before round 1.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Rounds to run.
    #[arg(long, default_value_t = 1000)]
    pub rounds: u32,
    /// Per net and round: probability that a new gateway registers.
    #[arg(long, default_value_t = 0.05)]
    pub join: f64,
    /// Per active client and round: probability that it leaves.
    #[arg(long, default_value_t = 0.001)]
    pub exit: f64,
    /// Per expected client and round: probability that its frame is lost (connection loss).
    #[arg(long, default_value_t = 0.002)]
    pub loss: f64,
    /// Per lost client and round: probability that it reconnects and re-registers.
    #[arg(long, default_value_t = 0.5)]
    pub reconnect: f64,
    /// Per relayed key share: probability that the relay flips one bit (gateways must catch
    /// it; every refused exchange is retried). At most 0.9.
    #[arg(long, default_value_t = 0.0)]
    pub tamper: f64,
    /// Seed of every random choice: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Neighbours per client (at least 3).
    #[arg(short = 'k', long = "degree", default_value_t = 3)]
    pub k: usize,
    /// Fewest present clients for which a round's sum is released.
    #[arg(long, default_value_t = 5)]
    pub min_clients: usize,
    /// Fewest present neighbours each present client needs for a sum to be released; a
    /// gateway also refuses resends that would leave it fewer live neighbours.
    #[arg(long, default_value_t = 2)]
    pub min_live: usize,
    /// u64 lanes per message (1..=32).
    #[arg(long, default_value_t = 2)]
    pub lanes: usize,
    /// Append every provider action to this hash-chained audit log (created or continued).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}

/// A validated `dcnet churn` run.
#[derive(Debug, Clone)]
pub struct ChurnRun {
    pub sim: ChurnConfig,
    pub audit: Option<PathBuf>,
}

impl ChurnArgs {
    pub fn into_config(self) -> Result<ChurnRun> {
        let sim = ChurnConfig {
            nets: self.nets,
            clients: self.clients,
            rounds: self.rounds,
            join: self.join,
            exit: self.exit,
            loss: self.loss,
            reconnect: self.reconnect,
            tamper: self.tamper,
            seed: self.seed,
            provider: ProviderConfig {
                k: self.k,
                min_clients: self.min_clients,
                min_live_neighbours: self.min_live,
                lanes: self.lanes,
            },
            gateway: GatewayConfig {
                min_live_neighbours: self.min_live,
            },
        };
        sim.validate()?;
        Ok(ChurnRun {
            sim,
            audit: self.audit,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; name the first bad entry.
    Verify(AuditVerifyArgs),
    /// List the recorded actions.
    Show(AuditShowArgs),
}

/// `dcnet audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The audit log.
    pub file: PathBuf,
    /// The published head hash (64 hex digits) the chain must end at; without it, entries cut
    /// off at the end cannot be noticed.
    #[arg(long, value_name = "HEX")]
    pub head: Option<String>,
}

/// A validated `dcnet audit verify`.
#[derive(Debug, Clone)]
pub struct AuditVerify {
    pub file: PathBuf,
    pub head: Option<[u8; 32]>,
}

impl AuditVerifyArgs {
    pub fn into_config(self) -> Result<AuditVerify> {
        let head = match self.head {
            None => None,
            Some(text) => Some(
                parse_hash(&text)
                    .with_context(|| format!("--head {text:?} is not 64 lower-case hex digits"))?,
            ),
        };
        Ok(AuditVerify {
            file: self.file,
            head,
        })
    }
}

/// `dcnet audit show`.
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// The audit log.
    pub file: PathBuf,
    /// Only actions that name this client.
    #[arg(long)]
    pub client: Option<u32>,
    /// Only actions in this net.
    #[arg(long)]
    pub net: Option<u32>,
}

/// A validated `dcnet audit show`.
#[derive(Debug, Clone)]
pub struct AuditShow {
    pub file: PathBuf,
    pub client: Option<u32>,
    pub net: Option<u32>,
}

impl AuditShowArgs {
    pub fn into_config(self) -> Result<AuditShow> {
        Ok(AuditShow {
            file: self.file,
            client: self.client,
            net: self.net,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Per net: clients, edges, degrees, connectivity, vertex connectivity and the weakest
    /// clients.
    Analyze(GraphAnalyzeArgs),
}

/// `dcnet graph analyze`.
#[derive(Debug, Args)]
pub struct GraphAnalyzeArgs {
    /// Key graph CSV: header `dc_net_id,client_a,client_b`, one row per edge.
    pub graph: PathBuf,
    /// How many weakest clients to list per net.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

/// A validated `dcnet graph analyze`.
#[derive(Debug, Clone)]
pub struct GraphAnalyze {
    pub graph: PathBuf,
    pub show: usize,
}

impl GraphAnalyzeArgs {
    pub fn into_config(self) -> Result<GraphAnalyze> {
        if self.show == 0 {
            bail!("--show must be at least 1");
        }
        Ok(GraphAnalyze {
            graph: self.graph,
            show: self.show,
        })
    }
}
