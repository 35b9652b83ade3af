//! Command-line arguments (clap derive) and their validation into configs.
//!
//! Every subcommand's arguments are declared here and turned into a validated config; the
//! `cmd` modules only ever see configs, so a bad flag fails before any work starts, with a
//! one-line message naming the flag.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use dcnet::sim::{SimConfig, first_round_of_day};
use engine::protocol::audit::parse_hash;
use engine::protocol::churn::ChurnConfig;
use engine::protocol::{GatewayConfig, ProviderConfig};
use ingest::AggregateOptions;

/// The most worker threads a command starts. More than a machine has cores only helps while
/// threads wait for the disk; tens of thousands would take minutes to start and spin.
const MAX_THREADS: u64 = 1024;

/// Parses `--threads`: a whole number up to [`MAX_THREADS`].
fn threads_parser() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_THREADS)
}

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
    /// Read household meters over Modbus RTU, find them on a bus, or simulate one.
    Meter(MeterArgs),
    /// Run a household gateway: read the meter at every round boundary, mask the energy
    /// consumed in the round with the edge keys, and append a transmit frame to a round log.
    ///
    /// At each boundary of the round clock (rounds of --period since the Unix epoch, so all
    /// gateways with the same period agree on round numbers) the import counter is read; the
    /// difference to the previous boundary, in Wh, is masked with the edge keys of the keys
    /// file (engine's local superposition) and appended as a `transmit` frame. A failed read, a
    /// counter that went backwards or a missing previous reading sends no frame for that round
    /// (never a wrong one) and says why on stderr.
    Gateway(GatewayArgs),
    /// Bill a meter's readings under a time-of-use tariff, or compare two tariffs.
    #[command(subcommand)]
    Tariff(TariffCommand),
    /// Make an identity (Ed25519 signing key and X25519 key) for a meter, company or user.
    ///
    /// Writes NAME.key (both secret keys; keep it private, created with mode 0600) and NAME.pub
    /// (both public keys, self-signed so a swapped key is detected). Hand out NAME.pub only.
    Keygen(KeygenArgs),
    /// The program lock: a meter's tariff changes only with t of n signed approvals.
    ///
    /// The meter locks its tariff under a random key K split with Shamir's (t, n) scheme among
    /// one user and n - 1 companies (`init`); a holder signs a change (`request`); holders
    /// who agree return their sealed share bound to that request (`approve`); the meter checks
    /// every signature, recovers K from t shares and re-locks the new tariff (`apply`).
    /// `security` helps choose t.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Write the valid frames of round logs as a table (Parquet, Arrow IPC or CSV).
    ///
    /// One row per valid frame with columns dc_net_id, client_id, round, notification,
    /// transmission, timestamp (ms) and lane0.., in input order, so that DuckDB, Polars,
    /// pandas or Spark can query round logs. Stretches that are not valid frames are counted by
    /// reason on stderr and not written.
    Export(ExportArgs),
    /// Measure dcnet on this machine, each figure next to a baseline from the same run.
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TariffCommand {
    /// Print kWh and cost per period and the total, exactly (decimal arithmetic, no rounding).
    ///
    /// Every reading's interval must lie inside one period; one that crosses a period boundary
    /// is refused, naming the boundary, since splitting its energy would be a guess.
    Bill(TariffBillArgs),
    /// Bill the same readings under two tariffs and show who gains what from the change.
    Diff(TariffDiffArgs),
}

/// Where the readings come from and how long each interval is.
#[derive(Debug, Args)]
pub struct ReadingsArgs {
    /// Readings CSV with header `start,wh`: interval start in RFC 3339 (any offset), energy
    /// in Wh consumed during the interval (a non-negative decimal).
    #[arg(long, value_name = "FILE")]
    pub readings: PathBuf,
    /// Length of every interval, e.g. 15m, 1h, 900s; it must divide the day. Default: the
    /// smallest gap between consecutive readings.
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TariffBillArgs {
    /// The tariff (TOML: currency, utc_offset, [[period]] tables with name, price, hours).
    #[arg(long, value_name = "FILE")]
    pub tariff: PathBuf,
    #[command(flatten)]
    pub readings: ReadingsArgs,
}

#[derive(Debug, Args)]
pub struct TariffDiffArgs {
    /// The old tariff, then the new one: give --tariff twice.
    #[arg(long = "tariff", value_name = "FILE", required = true)]
    pub tariffs: Vec<PathBuf>,
    #[command(flatten)]
    pub readings: ReadingsArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the files: writes NAME.key and NAME.pub.
    #[arg(long, value_name = "NAME")]
    pub out: PathBuf,
    /// The identity's name inside the files (default: the file name of NAME); 1 to 64
    /// characters from A-Z a-z 0-9 . _ -.
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Meter: lock a tariff under a fresh key split (t, n) among the holders.
    ///
    /// Writes STATE/lock.toml (public, meter-signed), STATE/tariff.toml (the tariff in force,
    /// for billing) and STATE/shares/<holder>.toml (hand each holder its file: the share inside
    /// is sealed to the meter, then to the holder, so no holder can read it).
    Init(LockInitArgs),
    /// A holder (normally a company): sign a request to change the tariff.
    Request(LockRequestArgs),
    /// A holder who agrees: return its sealed share, signed and bound to one request.
    Approve(LockApproveArgs),
    /// Meter: verify a request and its approvals; with t valid ones, change the tariff and
    /// re-lock it under a fresh key with fresh shares. Anything invalid changes nothing.
    Apply(LockApplyArgs),
    /// Security degree sd(n, t, p) = P(X <= t - 1), X ~ B(n, p): the probability that fewer
    /// than t of n shares leak when each leaks with probability p; exact digits.
    Security(LockSecurityArgs),
}

#[derive(Debug, Args)]
pub struct LockInitArgs {
    /// The meter's secret identity (from `dcnet keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The tariff to lock.
    #[arg(long, value_name = "FILE")]
    pub tariff: PathBuf,
    /// The user's public identity (holder 1).
    #[arg(long, value_name = "FILE")]
    pub user: PathBuf,
    /// A company's public identity; repeat for each (holders 2..=n in this order).
    #[arg(long = "company", value_name = "FILE", required = true)]
    pub companies: Vec<PathBuf>,
    /// Approvals needed to change the tariff, 2 <= t <= n (see `dcnet lock security`).
    #[arg(long = "t", value_name = "T")]
    pub threshold: u32,
    /// The meter's lock directory (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Replace an existing lock in STATE.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LockRequestArgs {
    /// The requester's secret identity; it must be a holder of the lock.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The meter's lock.toml.
    #[arg(long, value_name = "FILE")]
    pub lock: PathBuf,
    /// The new tariff.
    #[arg(long, value_name = "FILE")]
    pub tariff: PathBuf,
    /// Why the tariff should change (shown to every approver).
    #[arg(long)]
    pub reason: String,
    /// Where to write the signed request.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LockApproveArgs {
    /// The approver's secret identity.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The meter's public identity, obtained out of band: the lock must be the meter's.
    #[arg(long, value_name = "FILE")]
    pub meter: PathBuf,
    /// The meter's lock.toml.
    #[arg(long, value_name = "FILE")]
    pub lock: PathBuf,
    /// The approver's share file from the meter (STATE/shares/<name>.toml).
    #[arg(long, value_name = "FILE")]
    pub share: PathBuf,
    /// The request to approve.
    #[arg(long, value_name = "FILE")]
    pub request: PathBuf,
    /// Where to write the signed approval.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LockApplyArgs {
    /// The meter's secret identity.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The meter's lock directory (from `lock init`).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The request.
    #[arg(long, value_name = "FILE")]
    pub request: PathBuf,
    /// An approval; repeat for each. All must be valid; at least t are needed.
    #[arg(long = "approval", value_name = "FILE")]
    pub approvals: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LockSecurityArgs {
    /// Number of share holders n (1..=1000).
    #[arg(long = "n", value_name = "N")]
    pub holders: u32,
    /// Probability p that any one share leaks, a decimal such as 0.05.
    #[arg(long = "p", value_name = "P")]
    pub leak: String,
    /// Show only this threshold (default: a table over t = 1..=n).
    #[arg(long = "t", value_name = "T")]
    pub threshold: Option<u32>,
    /// Report the smallest t whose degree reaches this probability.
    #[arg(long, default_value = "0.999", value_name = "P")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// End-to-end `aggregate` against a memory-read floor, measured in the same run.
    ///
    /// Writes a simulated round log of about --frames frames (nets x clients households,
    /// enough rounds, 1% dropouts with their resends), then times (a) the whole columnar
    /// aggregation of it, from mapping the file to the settled rounds, and (b) the floor: one
    /// pass over the same mapped bytes summing every u64 word, on the same threads. Prints
    /// frames/s, GB/s and the ratio aggregate/floor for each repetition, and checks the totals
    /// against the simulation's truth. Also in each repetition: the checked floor (every
    /// frame's header and CRC checked, lane 0 summed, nothing grouped: what validation alone
    /// costs) and the aggregate without read-ahead hints (the baseline for the prefetching).
    Aggregate(BenchAggregateArgs),
    /// Edge keys per second, per core and on all cores, for both batch shapes and every
    /// backend this CPU runs.
    ///
    /// Shapes: many edges x one round (the multi-key kernels) and one edge x many rounds
    /// (expand once, parallel blocks). Baselines from the same run: the naive rate of one
    /// `ctr::Ctr128BE<Aes128>` per key, and `openssl speed -evp aes-128-ctr` (single key,
    /// 16 KiB buffers) converted to 16-byte blocks per second. Per-core rates divide by the
    /// thread's CPU time, as `openssl speed` does, so other work on the machine does not
    /// distort them.
    Keystream(BenchKeystreamArgs),
    /// Time `dcnet simulate` writing its round logs into a directory (default /dev/shm)
    /// against `dd if=/dev/zero bs=4M` writing the same number of bytes there, in the same
    /// run. Both outputs are deleted after each measurement.
    Simulate(BenchSimulateArgs),
}

#[derive(Debug, Args)]
pub struct BenchKeystreamArgs {
    /// Edges per batch in the many-edges shape.
    #[arg(long, default_value_t = 4096)]
    pub edges: usize,
    /// Rounds per batch in the one-edge shape.
    #[arg(long, default_value_t = 96)]
    pub rounds: u32,
    /// Lane counts to measure, comma separated (1..=32 each).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub lanes: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Measure only this backend: portable, aes-ni, vaes or vaes512 (default: every backend
    /// this CPU runs).
    #[arg(long)]
    pub backend: Option<String>,
    /// Threads for the all-cores figures (default: one per core; at most 1024).
    #[arg(long, value_parser = threads_parser())]
    pub threads: Option<usize>,
    /// Do not run `openssl speed` for the reference figure.
    #[arg(long)]
    pub no_openssl: bool,
}

#[derive(Debug, Args)]
pub struct BenchSimulateArgs {
    /// Where the simulation and dd write (and delete) their files; a tmpfs measures the
    /// simulator rather than a disk.
    #[arg(long, value_name = "DIR", default_value = "/dev/shm")]
    pub dir: PathBuf,
    /// DC nets to simulate.
    #[arg(long, default_value_t = 1000)]
    pub nets: u32,
    /// Clients per net.
    #[arg(long, default_value_t = 1000)]
    pub clients: u32,
    /// Rounds (15-minute intervals).
    #[arg(long, default_value_t = 96)]
    pub rounds: u32,
    /// Measurements (each: simulate, delete, dd, delete); the median ratio is reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

/// A validated `bench keystream`.
#[derive(Debug, Clone)]
pub struct BenchKeystreamConfig {
    pub edges: usize,
    pub rounds: u32,
    pub lanes: Vec<usize>,
    pub seconds: f64,
    pub backend: Option<engine::keystream::Backend>,
    pub threads: usize,
    pub openssl: bool,
}

/// A validated `bench simulate`.
#[derive(Debug, Clone)]
pub struct BenchSimulateConfig {
    pub dir: PathBuf,
    pub sim: SimConfig,
    pub repeat: u32,
}

impl BenchKeystreamArgs {
    pub fn into_config(self) -> Result<BenchKeystreamConfig> {
        ensure!(self.edges >= 1, "--edges must be at least 1");
        ensure!(self.rounds >= 1, "--rounds must be at least 1");
        ensure!(
            !self.lanes.is_empty(),
            "--lanes needs at least one lane count"
        );
        for &lanes in &self.lanes {
            ensure!(
                (1..=engine::MAX_LANES).contains(&lanes),
                "--lanes must be 1..=32 each, not {lanes}"
            );
        }
        ensure!(
            self.seconds.is_finite() && self.seconds > 0.0,
            "--seconds must be a positive number of seconds"
        );
        let backend = match self.backend {
            Some(name) => {
                let backend: engine::keystream::Backend = name
                    .parse()
                    .with_context(|| format!("--backend {name:?}"))?;
                ensure!(
                    backend.is_available(),
                    "--backend {backend}: this CPU lacks its instructions"
                );
                Some(backend)
            }
            None => None,
        };
        let threads = match self.threads {
            Some(threads) => {
                ensure!(threads >= 1, "--threads must be at least 1");
                threads
            }
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        Ok(BenchKeystreamConfig {
            edges: self.edges,
            rounds: self.rounds,
            lanes: self.lanes,
            seconds: self.seconds,
            backend,
            threads,
            openssl: !self.no_openssl,
        })
    }
}

impl BenchSimulateArgs {
    pub fn into_config(self) -> Result<BenchSimulateConfig> {
        ensure!(self.repeat >= 1, "--repeat must be at least 1");
        let population = PopulationArgs {
            nets: self.nets,
            clients: self.clients,
            degree: 4,
            rounds: self.rounds,
            lanes: 1,
            dropout: 0.01,
            seed: 42,
            start: "2026-01-12".to_owned(),
            min_participants: 2,
        };
        Ok(BenchSimulateConfig {
            dir: self.dir,
            sim: population.into_config()?,
            repeat: self.repeat,
        })
    }
}

/// A table file format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet (Snappy-compressed).
    Parquet,
    /// Arrow IPC file (Feather v2).
    Arrow,
}

impl FormatArg {
    pub fn table_format(self) -> ingest::export::TableFormat {
        match self {
            Self::Csv => ingest::export::TableFormat::Csv,
            Self::Parquet => ingest::export::TableFormat::Parquet,
            Self::Arrow => ingest::export::TableFormat::Arrow,
        }
    }
}

/// Which aggregation engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// Columnar batches on every core (the default).
    Columnar,
    /// The straightforward frame-by-frame reference, single-threaded.
    Reference,
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
    /// Where to write global.csv (default: standard output). It is opened before the logs are
    /// read, so a path that cannot be written fails at once; a run that fails leaves an
    /// existing file as it was (the same holds for --rejects).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Withhold a round's sum when fewer clients than this are present (at least 2).
    #[arg(long, default_value_t = 2, value_name = "M")]
    pub min_participants: usize,
    /// Flag rounds where a resending client keeps fewer live neighbours than this: its
    /// correction would expose too much of its reading.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub min_live_neighbours: usize,
    /// Also write every rejected frame as CSV rows `file,offset,reason`: the input path, the
    /// byte offset of the frame (or bad stretch) in it, and the reason's name. A long list goes
    /// through temporary files (see --reject-memory), so memory does not grow with it.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Memory for the list of rejected frames (--rejects), in MiB per worker thread (columnar
    /// engine). Beyond it the list is sorted and written to unnamed temporary files in $TMPDIR,
    /// 9 to 17 bytes a frame, and merged into the --rejects file at the end; the file is the
    /// same. If they cannot be written (a full disk, no usable $TMPDIR), the run stops at once
    /// with that error.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub reject_memory: u64,
    /// Grace in milliseconds after a round's end: a transmit frame stamped later is rejected as
    /// `late` and its client counts as missing (its neighbours must resend). Without this flag
    /// timestamps are not checked.
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,
    /// Length of a round: a number with unit ms, s, m or h (15m, 900s), or bare seconds.
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub period: String,
    /// Start of round 0: milliseconds since the Unix epoch, or a UTC date YYYY-MM-DD. Round r
    /// spans [epoch + r*period, epoch + (r+1)*period); with the defaults, round numbers are
    /// quarter hours since the Unix epoch, as `dcnet simulate` writes them.
    #[arg(long, default_value = "0", value_name = "TIME")]
    pub epoch: String,
    /// Format of the results written to --out (or standard output).
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    /// Worker threads (0: one per core; at most 1024). Memory grows only a little with them:
    /// the frames read ahead and the windows of logs with interleaved nets are capped.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = threads_parser())]
    pub threads: usize,
    /// Aggregation engine; both give identical results.
    #[arg(long, value_enum, default_value_t = EngineArg::Columnar)]
    pub engine: EngineArg,
    /// Memory for (net, round) groups still open, in MiB (columnar engine). Beyond it the least
    /// recently used groups are settled early; frames that arrive for them later cost a second
    /// read of their byte ranges, never a different result.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub group_memory: u64,
    /// No progress bar and no final throughput line (rejects and warnings are still reported).
    #[arg(long, short)]
    pub quiet: bool,
    /// Round logs (*.dclog) to aggregate; `-` reads standard input (copied to a temporary file
    /// in $TMPDIR first, so memory does not grow with it).
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Table format.
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    pub format: FormatArg,
    /// Where to write the table.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// No progress bar and no final throughput line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Round logs (*.dclog) to export; `-` reads standard input.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchAggregateArgs {
    /// Frames in the log (rounded up to whole rounds).
    #[arg(long, default_value_t = 20_000_000, value_name = "N")]
    pub frames: u64,
    /// DC nets in the simulated population.
    #[arg(long, default_value_t = 1000)]
    pub nets: u32,
    /// Clients per net.
    #[arg(long, default_value_t = 1000)]
    pub clients: u32,
    /// Lanes per frame (1..=32).
    #[arg(long, default_value_t = 1)]
    pub lanes: u8,
    /// Worker threads for both measurements (0: one per core; at most 1024).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = threads_parser())]
    pub threads: usize,
    /// Measurements of each kind, alternating floor and aggregate.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Keep the log and its graph.csv in DIR, e.g. for scripts/compare_duckdb.py (default: a
    /// temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write the log round by round with the nets' frames interleaved at random within each
    /// round, as a collector writing frames as they arrive from every net would (default: net
    /// by net, each round's frames in client order, as `dcnet simulate` writes them). The log
    /// is reordered in memory once written: it needs about the log's size in RAM. Each run
    /// then also aggregates the log morsel by morsel, the baseline of the windows partitioned
    /// by net that such logs are read in.
    #[arg(long)]
    pub interleave: bool,
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
    pub rejects: Option<PathBuf>,
    pub format: FormatArg,
    pub threads: usize,
    pub engine: EngineArg,
    pub group_memory: u64,
    /// Listed rejects a worker keeps in memory before spilling them to a temporary file.
    pub rejects_in_memory: usize,
    pub quiet: bool,
    pub logs: Vec<PathBuf>,
}

/// A validated `bench aggregate`.
#[derive(Debug, Clone)]
pub struct BenchAggregateConfig {
    pub sim: SimConfig,
    pub threads: usize,
    pub repeat: u32,
    pub dir: Option<PathBuf>,
    pub interleave: bool,
}

/// Parses a duration as [`parse_duration`] does (`900000ms`, `900s`, `15m`, `1h`, or bare
/// seconds, as every duration flag of the command takes it) into whole milliseconds, at least one.
pub fn parse_duration_ms(text: &str, flag: &str) -> Result<u64> {
    let duration = parse_duration(flag, text)?;
    // At most a year, so it fits.
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    ensure!(ms > 0, "{flag} {text:?}: must be at least 1ms");
    ensure!(
        duration == Duration::from_millis(ms),
        "{flag} {text:?}: must be whole milliseconds"
    );
    Ok(ms)
}

/// Parses an instant: milliseconds since the Unix epoch, or a UTC date YYYY-MM-DD (midnight).
pub fn parse_epoch_ms(text: &str, flag: &str) -> Result<u64> {
    if let Ok(ms) = text.trim().parse::<u64>() {
        return Ok(ms);
    }
    // One message, not the date's error under a second one saying the same.
    let (year, month, day) = parse_date(text, flag)
        .map_err(|e| anyhow::anyhow!("{e} (or milliseconds since the Unix epoch)"))?;
    let days = engine::loadprofile::days_from_civil(year, month, day);
    Ok(u64::try_from(days).unwrap_or(0) * 86_400_000)
}

/// A validated `demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub out: Option<PathBuf>,
    pub sim: SimConfig,
}

/// A validated `tariff bill`.
#[derive(Debug, Clone)]
pub struct TariffBillConfig {
    pub tariff: PathBuf,
    pub readings: ReadingsConfig,
}

/// A validated `tariff diff`.
#[derive(Debug, Clone)]
pub struct TariffDiffConfig {
    pub before: PathBuf,
    pub after: PathBuf,
    pub readings: ReadingsConfig,
}

/// Readings, interval (seconds; `None`: inferred) and output form.
#[derive(Debug, Clone)]
pub struct ReadingsConfig {
    pub path: PathBuf,
    pub interval: Option<u32>,
    pub json: bool,
}

/// A validated `keygen`.
#[derive(Debug, Clone)]
pub struct KeygenConfig {
    pub secret_path: PathBuf,
    pub public_path: PathBuf,
    pub name: String,
    pub force: bool,
}

/// A validated `lock init`.
#[derive(Debug, Clone)]
pub struct LockInitConfig {
    pub key: PathBuf,
    pub tariff: PathBuf,
    pub user: PathBuf,
    pub companies: Vec<PathBuf>,
    pub threshold: u8,
    pub state: PathBuf,
    pub force: bool,
}

/// A validated `lock security`.
#[derive(Debug, Clone)]
pub struct LockSecurityConfig {
    pub holders: u32,
    pub leak: lock::Probability,
    pub threshold: Option<u32>,
    pub target: lock::Probability,
}

/// `15m`, `1h`, `900s` or plain seconds, as seconds.
fn parse_interval(text: &str) -> Result<u32> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => bail!("--interval {text:?}: use a number with s, m or h, e.g. 15m"),
    };
    let seconds = number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|s| *s > 0)
        .with_context(|| format!("--interval {text:?}: not a positive duration"))?;
    ensure!(
        lock::billing::SECONDS_PER_DAY.is_multiple_of(seconds),
        "--interval {text:?} does not divide the day"
    );
    Ok(seconds)
}

impl ReadingsArgs {
    fn into_config(self) -> Result<ReadingsConfig> {
        Ok(ReadingsConfig {
            path: self.readings,
            interval: self.interval.as_deref().map(parse_interval).transpose()?,
            json: self.json,
        })
    }
}

impl TariffBillArgs {
    pub fn into_config(self) -> Result<TariffBillConfig> {
        Ok(TariffBillConfig {
            tariff: self.tariff,
            readings: self.readings.into_config()?,
        })
    }
}

impl TariffDiffArgs {
    pub fn into_config(self) -> Result<TariffDiffConfig> {
        let [before, after]: [PathBuf; 2] = self.tariffs.try_into().map_err(|given: Vec<_>| {
            anyhow::anyhow!(
                "--tariff given {} time(s): give the old tariff, then the new one",
                given.len()
            )
        })?;
        Ok(TariffDiffConfig {
            before,
            after,
            readings: self.readings.into_config()?,
        })
    }
}

impl KeygenArgs {
    pub fn into_config(self) -> Result<KeygenConfig> {
        let name = match self.name {
            Some(name) => name,
            None => self
                .out
                .file_name()
                .and_then(|name| name.to_str())
                .map(str::to_owned)
                .with_context(|| format!("--out {}: no file name to use", self.out.display()))?,
        };
        lock::identity::check_name(&name).context("--name")?;
        let with_extension = |extension: &str| {
            let mut path = self.out.clone().into_os_string();
            path.push(extension);
            PathBuf::from(path)
        };
        Ok(KeygenConfig {
            secret_path: with_extension(".key"),
            public_path: with_extension(".pub"),
            name,
            force: self.force,
        })
    }
}

impl LockInitArgs {
    pub fn into_config(self) -> Result<LockInitConfig> {
        let n = self.companies.len() + 1;
        ensure!(
            n <= usize::from(lock::shamir::MAX_SHARES),
            "{n} holders: a lock has at most 255"
        );
        ensure!(
            (2..=n).contains(&(self.threshold as usize)),
            "--t {} must satisfy 2 <= t <= n = {n} (one --user and {} --company)",
            self.threshold,
            n - 1
        );
        Ok(LockInitConfig {
            key: self.key,
            tariff: self.tariff,
            user: self.user,
            companies: self.companies,
            threshold: u8::try_from(self.threshold).context("--t")?,
            state: self.state,
            force: self.force,
        })
    }
}

impl LockSecurityArgs {
    pub fn into_config(self) -> Result<LockSecurityConfig> {
        ensure!(
            (1..=lock::security::MAX_HOLDERS).contains(&self.holders),
            "--n {} must be 1..={}",
            self.holders,
            lock::security::MAX_HOLDERS
        );
        let leak = self.leak.parse().context("--p")?;
        let target = self.target.parse().context("--target")?;
        if let Some(t) = self.threshold {
            ensure!(
                (1..=self.holders).contains(&t),
                "--t {t} must be 1..=n = {}",
                self.holders
            );
        }
        Ok(LockSecurityConfig {
            holders: self.holders,
            leak,
            threshold: self.threshold,
            target,
        })
    }
}

fn parse_date(text: &str, flag: &str) -> Result<(i64, u32, u32)> {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        bail!("{flag} {text:?}: expected a date YYYY-MM-DD");
    };
    let year: i64 = year
        .parse()
        .with_context(|| format!("{flag} {text:?}: bad year"))?;
    let month: u32 = month
        .parse()
        .with_context(|| format!("{flag} {text:?}: bad month"))?;
    let day: u32 = day
        .parse()
        .with_context(|| format!("{flag} {text:?}: bad day"))?;
    ensure!(
        (1970..=9999).contains(&year),
        "{flag} {text:?}: year must be 1970..=9999"
    );
    ensure!(
        (1..=12).contains(&month),
        "{flag} {text:?}: month must be 1..=12"
    );
    let (y, m, d) = engine::loadprofile::civil_from_days(engine::loadprofile::days_from_civil(
        year, month, day,
    ));
    ensure!(
        (y, m, d) == (year, month, day),
        "{flag} {text:?}: no such day"
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
        let (year, month, day) = parse_date(&self.start, "--start")?;
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
        let period_ms = parse_duration_ms(&self.period, "--period")?;
        let epoch_ms = parse_epoch_ms(&self.epoch, "--epoch")?;
        Ok(AggregateConfig {
            graph: self.graph,
            out: self.out,
            options: AggregateOptions {
                min_participants: self.min_participants,
                min_live_neighbours: self.min_live_neighbours,
                epoch_ms,
                period_ms,
                deadline_ms: self.deadline_ms,
            },
            rejects: self.rejects,
            format: self.format,
            threads: self.threads,
            engine: self.engine,
            group_memory: self.group_memory.saturating_mul(1 << 20),
            rejects_in_memory: usize::try_from(
                self.reject_memory.saturating_mul(1 << 20) / ingest::spill::REJECT_ENTRY_BYTES,
            )
            .unwrap_or(usize::MAX),
            quiet: self.quiet,
            logs: self.logs,
        })
    }
}

impl BenchAggregateArgs {
    pub fn into_config(self) -> Result<BenchAggregateConfig> {
        ensure!(self.frames >= 1, "--frames must be at least 1");
        ensure!(self.nets >= 1, "--nets must be at least 1");
        ensure!(
            self.clients >= 5,
            "--clients must be at least 5 (every client has 4 neighbours)"
        );
        ensure!(
            (1..=32).contains(&self.lanes),
            "--lanes must be 1..=32, not {}",
            self.lanes
        );
        ensure!(self.repeat >= 1, "--repeat must be at least 1");
        let per_round = u64::from(self.nets) * u64::from(self.clients);
        let rounds = u32::try_from(self.frames.div_ceil(per_round))
            .map_err(|_| anyhow::anyhow!("--frames {} is too many rounds", self.frames))?;
        Ok(BenchAggregateConfig {
            sim: SimConfig {
                nets: self.nets,
                clients: self.clients,
                rounds,
                lanes: self.lanes,
                ..SimConfig::default()
            },
            threads: self.threads,
            repeat: self.repeat,
            dir: self.dir,
            interleave: self.interleave,
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

// ---- meter and gateway -------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct MeterArgs {
    #[command(subcommand)]
    pub command: MeterCommand,
}

#[derive(Debug, Subcommand)]
pub enum MeterCommand {
    /// Print every register of a meter's profile with its unit, once or every --interval.
    Read(MeterReadArgs),
    /// Probe unit ids on a bus and list the devices that answer.
    Scan(MeterScanArgs),
    /// Run a simulated meter bus (an RTU server answering a profile's registers) on a serial
    /// port or a new pseudo-terminal, whose path is printed on standard output.
    ///
    /// The import counter grows along the BDEW H25 household load profile, --speed times
    /// faster than real time. Faults can be injected with --fault. Runs until interrupted.
    Sim(MeterSimArgs),
    /// List the built-in device profiles, or print one (a starting point for your own).
    Profiles(MeterProfilesArgs),
}

/// The serial line.
#[derive(Debug, Args)]
pub struct SerialArgs {
    /// Serial port: an RS-485 adapter (/dev/ttyUSB0, /dev/serial/by-id/...) or a
    /// pseudo-terminal from `dcnet meter sim --pty`.
    #[arg(long, value_name = "PATH")]
    pub port: PathBuf,
    /// Baud rate (default: the profile's).
    #[arg(long)]
    pub baud: Option<u32>,
    /// Parity: none, even or odd (default: the profile's).
    #[arg(long, value_name = "none|even|odd")]
    pub parity: Option<String>,
    /// Stop bits, 1 or 2 (default: the profile's).
    #[arg(long, value_name = "1|2")]
    pub stop_bits: Option<u8>,
}

/// Which device profile.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ProfileArgs {
    /// A built-in device profile: sdm120, sdm630, abb-b23, em24, sunspec-203
    /// (`dcnet meter profiles` lists them).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// A device profile in a TOML file (see README "Reading a real meter").
    #[arg(long, value_name = "FILE")]
    pub profile_file: Option<PathBuf>,
}

/// Overrides of the profile's request timing.
#[derive(Debug, Args)]
pub struct TimingArgs {
    /// Time to wait for an answer, e.g. 500ms, 2s (default: the profile's).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Extra attempts after a timeout, CRC error or busy meter (default: the profile's).
    #[arg(long, value_name = "N")]
    pub retries: Option<u8>,
}

#[derive(Debug, Args)]
pub struct MeterReadArgs {
    #[command(flatten)]
    pub serial: SerialArgs,
    /// Modbus unit id of the meter, 1..=247.
    #[arg(long, value_name = "ID")]
    pub unit: String,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Poll again every DURATION (e.g. 10s, 1m) until interrupted or --count polls.
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Stop after N polls (default: 1, or unlimited with --interval).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// One JSON object per poll on standard output instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the bus counters (requests, errors, timeouts, exceptions...) at the end.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Args)]
pub struct MeterScanArgs {
    #[command(flatten)]
    pub serial: SerialArgs,
    /// Probe with this built-in profile's first block (and show its import energy) instead of
    /// holding register 0; serial defaults come from it.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// First unit id to probe.
    #[arg(long, default_value_t = 1, value_name = "ID")]
    pub from: u8,
    /// Last unit id to probe.
    #[arg(long, default_value_t = 247, value_name = "ID")]
    pub to: u8,
    /// Time to wait for each unit id.
    #[arg(long, default_value = "100ms", value_name = "DURATION")]
    pub timeout: String,
    /// Print the bus counters at the end.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Args)]
pub struct MeterSimArgs {
    /// Serve on this serial port (e.g. one end of an RS-485 adapter pair).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "pty",
        required_unless_present = "pty"
    )]
    pub port: Option<PathBuf>,
    /// Serve on a new pseudo-terminal and print its path on standard output.
    #[arg(long)]
    pub pty: bool,
    /// Serial settings when serving on --port (default: the profile's).
    #[arg(long)]
    pub baud: Option<u32>,
    /// Parity when serving on --port: none, even or odd (default: the profile's).
    #[arg(long, value_name = "none|even|odd")]
    pub parity: Option<String>,
    /// Stop bits when serving on --port (default: the profile's).
    #[arg(long, value_name = "1|2")]
    pub stop_bits: Option<u8>,
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Unit id of a simulated meter; repeat for several meters on the bus.
    #[arg(long = "unit", value_name = "ID", required = true)]
    pub units: Vec<String>,
    /// Annual consumption the H25 load profile is scaled to, kWh.
    #[arg(long, default_value_t = 3500.0, value_name = "KWH")]
    pub annual_kwh: f64,
    /// Import counter at the start, kWh.
    #[arg(long, default_value_t = 1000.0, value_name = "KWH")]
    pub start_kwh: f64,
    /// Simulated time runs this many times faster than real time (900: 15 min per second).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Inject a fault into every meter: KIND@N (the N-th request only) or KIND%N (every N-th),
    /// KIND one of silence, exception:CODE, corrupt (bad CRC), noise (garbage before the
    /// answer), late:MS. Repeatable.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Append one CSV row `unit,at_ms,sim_ms,import_wh` per answer carrying the import counter
    /// (what a reader must have seen).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MeterProfilesArgs {
    /// Print this built-in profile's TOML.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub serial: SerialArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Modbus unit id of the household meter, 1..=247.
    #[arg(long, value_name = "ID")]
    pub unit: String,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// DC net id.
    #[arg(long, value_name = "N")]
    pub net: u32,
    /// This gateway's client id in the net.
    #[arg(long, value_name = "C")]
    pub client: u32,
    /// Edge seeds: one line per neighbour, `CLIENT_ID SEED` with the 16-byte seed in 32 hex
    /// digits; `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Round log to append transmit frames to (created if missing).
    #[arg(long, value_name = "LOG")]
    pub out: PathBuf,
    /// Round length, e.g. 15m (the metering interval), 1h, or seconds for tests (2s, 2).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub period: String,
    /// Stop after R rounds (default: run until interrupted).
    #[arg(long, value_name = "R")]
    pub rounds: Option<u32>,
    /// Take the first reading at the start of this round and send frames from it on (default:
    /// the next round boundary). Gateways started together use it to cover the same rounds.
    #[arg(long, value_name = "ROUND")]
    pub from_round: Option<u32>,
    /// Lanes per frame: 1 (lane 0 = Wh imported in the round) or 2 (lane 1 = Wh exported; the
    /// profile needs an export counter).
    #[arg(long, default_value_t = 1)]
    pub lanes: u8,
    /// Print the bus counters at the end.
    #[arg(long)]
    pub stats: bool,
}

/// The serial line, with the profile's defaults filled in.
#[derive(Debug, Clone)]
pub struct SerialConfig {
    pub port: String,
    pub settings: meter_io::SerialSettings,
}

/// A validated `meter read`.
#[derive(Debug, Clone)]
pub struct MeterReadConfig {
    pub serial: SerialConfig,
    pub unit: meter_io::UnitId,
    pub profile: Arc<meter_io::Profile>,
    pub interval: Option<Duration>,
    pub count: Option<u64>,
    pub json: bool,
    pub stats: bool,
}

/// A validated `meter scan`.
#[derive(Debug, Clone)]
pub struct MeterScanConfig {
    pub serial: SerialConfig,
    pub profile: Option<Arc<meter_io::Profile>>,
    pub units: std::ops::RangeInclusive<u8>,
    pub timeout: Duration,
    pub stats: bool,
}

/// Where a simulated bus serves.
#[derive(Debug, Clone)]
pub enum SimLine {
    Port(SerialConfig),
    Pty,
}

/// A validated `meter sim`.
#[derive(Debug, Clone)]
pub struct MeterSimConfig {
    pub line: SimLine,
    pub sim: meter_io::sim::SimConfig,
    pub record: Option<PathBuf>,
}

/// A validated `gateway` (the household gateway command, not the protocol's
/// `engine::protocol::GatewayConfig`).
#[derive(Debug, Clone)]
pub struct GatewayRunConfig {
    pub serial: SerialConfig,
    pub unit: meter_io::UnitId,
    pub profile: Arc<meter_io::Profile>,
    pub net: u32,
    pub client: u32,
    pub keys: meter_io::gateway::KeyFile,
    pub keys_path: PathBuf,
    pub out: PathBuf,
    pub clock: meter_io::gateway::RoundClock,
    pub rounds: Option<u32>,
    pub from_round: Option<u32>,
    pub lanes: u8,
    pub stats: bool,
}

/// Parses a duration: a number with `ms`, `s`, `m` or `h`, or a bare number of seconds.
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| {
            format!("{flag} {text:?}: expected a duration like 500ms, 30s, 15m, 1h or 2")
        })?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => bail!("{flag} {text:?}: unknown unit {other:?} (use ms, s, m or h)"),
    };
    ensure!(
        seconds <= 366.0 * 86_400.0,
        "{flag} {text:?}: longer than a year"
    );
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_unit(flag: &str, text: &str) -> Result<meter_io::UnitId> {
    text.parse::<meter_io::UnitId>()
        .map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))
}

impl ProfileArgs {
    fn load(&self) -> Result<Arc<meter_io::Profile>> {
        match (&self.profile, &self.profile_file) {
            (Some(name), _) => meter_io::profile::built_in(name).context("--profile"),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--profile-file {}", path.display()))?;
                let profile = meter_io::Profile::from_toml(&path.display().to_string(), &text)
                    .context("--profile-file")?;
                Ok(Arc::new(profile))
            }
            (None, None) => bail!("one of --profile or --profile-file is required"),
        }
    }
}

fn serial_settings(
    profile: Option<&meter_io::Profile>,
    baud: Option<u32>,
    parity: Option<&str>,
    stop_bits: Option<u8>,
) -> Result<meter_io::SerialSettings> {
    use meter_io::serial::{Parity, StopBits};
    let defaults = profile
        .map(|p| p.serial)
        .unwrap_or(meter_io::SerialSettings {
            baud: 9600,
            parity: Parity::Even,
            stop_bits: StopBits::One,
        });
    let baud = baud.unwrap_or(defaults.baud);
    ensure!(
        (300..=4_000_000).contains(&baud),
        "--baud {baud}: expected 300..=4000000"
    );
    let parity = match parity {
        Some(p) => p
            .parse::<Parity>()
            .map_err(|e| anyhow::anyhow!("--parity: {e}"))?,
        None => defaults.parity,
    };
    let stop_bits = match stop_bits {
        Some(s) => StopBits::try_from(s).map_err(|e| anyhow::anyhow!("--stop-bits: {e}"))?,
        None => defaults.stop_bits,
    };
    Ok(meter_io::SerialSettings {
        baud,
        parity,
        stop_bits,
    })
}

impl SerialArgs {
    fn into_config(self, profile: Option<&meter_io::Profile>) -> Result<SerialConfig> {
        Ok(SerialConfig {
            settings: serial_settings(profile, self.baud, self.parity.as_deref(), self.stop_bits)?,
            port: self.port.to_string_lossy().into_owned(),
        })
    }
}

impl TimingArgs {
    /// The profile with the overridden timing.
    fn apply(&self, profile: Arc<meter_io::Profile>) -> Result<Arc<meter_io::Profile>> {
        if self.timeout.is_none() && self.retries.is_none() {
            return Ok(profile);
        }
        let mut p = (*profile).clone();
        if let Some(text) = &self.timeout {
            let timeout = parse_duration("--timeout", text)?;
            ensure!(
                timeout >= Duration::from_millis(1),
                "--timeout {text:?}: must be at least 1ms"
            );
            p.timing.timeout = timeout;
            p.timing.recovery = p.timing.recovery.max(timeout);
        }
        if let Some(retries) = self.retries {
            ensure!(retries <= 10, "--retries {retries}: at most 10");
            p.timing.retries = retries;
        }
        Ok(Arc::new(p))
    }
}

impl MeterReadArgs {
    pub fn into_config(self) -> Result<MeterReadConfig> {
        let profile = self.timing.apply(self.profile.load()?)?;
        let interval = self
            .interval
            .as_deref()
            .map(|t| parse_duration("--interval", t))
            .transpose()?;
        if let Some(interval) = interval {
            ensure!(
                interval >= Duration::from_millis(100),
                "--interval: at least 100ms"
            );
        }
        ensure!(self.count != Some(0), "--count must be at least 1");
        Ok(MeterReadConfig {
            unit: parse_unit("--unit", &self.unit)?,
            serial: self.serial.into_config(Some(&profile))?,
            profile,
            count: self
                .count
                .or(if interval.is_some() { None } else { Some(1) }),
            interval,
            json: self.json,
            stats: self.stats,
        })
    }
}

impl MeterScanArgs {
    pub fn into_config(self) -> Result<MeterScanConfig> {
        let profile = self
            .profile
            .as_deref()
            .map(meter_io::profile::built_in)
            .transpose()
            .context("--profile")?;
        parse_unit("--from", &self.from.to_string())?;
        parse_unit("--to", &self.to.to_string())?;
        ensure!(
            self.from <= self.to,
            "--from {} is above --to {}",
            self.from,
            self.to
        );
        let timeout = parse_duration("--timeout", &self.timeout)?;
        ensure!(
            timeout >= Duration::from_millis(1),
            "--timeout: at least 1ms"
        );
        Ok(MeterScanConfig {
            serial: self.serial.into_config(profile.as_deref())?,
            profile,
            units: self.from..=self.to,
            timeout,
            stats: self.stats,
        })
    }
}

impl MeterSimArgs {
    pub fn into_config(self) -> Result<MeterSimConfig> {
        let profile = self.profile.load()?;
        let line = match self.port {
            Some(port) => SimLine::Port(SerialConfig {
                settings: serial_settings(
                    Some(&profile),
                    self.baud,
                    self.parity.as_deref(),
                    self.stop_bits,
                )?,
                port: port.to_string_lossy().into_owned(),
            }),
            None => SimLine::Pty,
        };
        ensure!(
            self.annual_kwh.is_finite() && (0.0..=1e7).contains(&self.annual_kwh),
            "--annual-kwh {}: expected 0..=10000000",
            self.annual_kwh
        );
        ensure!(
            self.start_kwh.is_finite() && (0.0..=1e9).contains(&self.start_kwh),
            "--start-kwh {}: expected 0..=1000000000",
            self.start_kwh
        );
        ensure!(
            self.speed.is_finite() && self.speed > 0.0 && self.speed <= 1e6,
            "--speed {}: expected a positive factor up to 1000000",
            self.speed
        );
        let faults = self
            .faults
            .iter()
            .map(|f| {
                f.parse()
                    .map_err(|e: String| anyhow::anyhow!("--fault: {e}"))
            })
            .collect::<Result<Vec<meter_io::sim::FaultRule>>>()?;
        let mut meters = Vec::new();
        for text in &self.units {
            let unit = parse_unit("--unit", text)?;
            ensure!(
                meters
                    .iter()
                    .all(|m: &meter_io::sim::SimMeterConfig| m.unit != unit),
                "--unit {unit} is given twice"
            );
            meters.push(meter_io::sim::SimMeterConfig {
                unit,
                profile: profile.clone(),
                annual_kwh: self.annual_kwh,
                import_wh: self.start_kwh * 1000.0,
                export_wh: 0.0,
                faults: faults.clone(),
            });
        }
        Ok(MeterSimConfig {
            line,
            sim: meter_io::sim::SimConfig {
                meters,
                speed: self.speed,
                start_ms: None,
            },
            record: self.record,
        })
    }
}

impl GatewayArgs {
    pub fn into_config(self) -> Result<GatewayRunConfig> {
        let profile = self.timing.apply(self.profile.load()?)?;
        ensure!(
            (1..=2).contains(&self.lanes),
            "--lanes {}: expected 1 or 2",
            self.lanes
        );
        if self.lanes == 2 {
            ensure!(
                profile
                    .register_with_role(meter_io::Role::EnergyExport)
                    .is_some(),
                "--lanes 2: profile {} has no export energy register",
                profile.name
            );
        }
        let period = parse_duration("--period", &self.period)?;
        let clock = meter_io::gateway::RoundClock::new(period.as_millis() as u64)
            .with_context(|| format!("--period {:?}: at least 1s", self.period))?;
        ensure!(self.rounds != Some(0), "--rounds must be at least 1");
        // The file holds secrets: wipe the text once the seeds are parsed.
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&self.keys)
                .with_context(|| format!("--keys {}", self.keys.display()))?,
        );
        let keys =
            meter_io::gateway::KeyFile::parse(&self.keys.display().to_string(), &text, self.client)
                .context("--keys")?;
        Ok(GatewayRunConfig {
            unit: parse_unit("--unit", &self.unit)?,
            serial: self.serial.into_config(Some(&profile))?,
            profile,
            net: self.net,
            client: self.client,
            keys,
            keys_path: self.keys,
            out: self.out,
            clock,
            rounds: self.rounds,
            from_round: self.from_round,
            lanes: self.lanes,
            stats: self.stats,
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

    fn parse(args: &[&str]) -> Result<Command> {
        let mut argv = vec!["dcnet"];
        argv.extend_from_slice(args);
        Ok(Cli::try_parse_from(argv)?.command)
    }

    #[test]
    fn intervals_parse_with_units_and_must_divide_the_day() {
        assert_eq!(parse_interval("15m").unwrap(), 900);
        assert_eq!(parse_interval("1h").unwrap(), 3600);
        assert_eq!(parse_interval("900").unwrap(), 900);
        for bad in ["7m", "0m", "15x", "m", "-5m"] {
            let error = parse_interval(bad).unwrap_err().to_string();
            assert!(error.contains("--interval"), "{bad}: {error}");
        }
    }

    fn aggregate(args: &[&str]) -> Result<AggregateConfig> {
        let mut argv = vec!["dcnet", "aggregate", "--graph", "g.csv"];
        argv.extend_from_slice(args);
        argv.push("x.dclog");
        match Cli::try_parse_from(argv)?.command {
            Command::Aggregate(a) => a.into_config(),
            _ => unreachable!("parsed aggregate"),
        }
    }

    #[test]
    fn thread_counts_beyond_the_limit_are_refused_by_name() {
        assert_eq!(aggregate(&["--threads", "1024"]).unwrap().threads, 1024);
        assert_eq!(aggregate(&[]).unwrap().threads, 0);
        for args in [
            &["aggregate", "--graph", "g", "--threads", "1025", "x"][..],
            &["aggregate", "--graph", "g", "--threads", "many", "x"],
            &["bench", "aggregate", "--threads", "100000"],
            &["bench", "keystream", "--threads", "5000"],
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.contains("--threads"), "{args:?}: {error}");
        }
    }

    #[test]
    fn lock_and_tariff_flags_are_validated() {
        let Command::Tariff(TariffCommand::Diff(diff)) =
            parse(&["tariff", "diff", "--tariff", "a", "--readings", "r"]).unwrap()
        else {
            panic!("parsed tariff diff")
        };
        assert!(
            diff.into_config()
                .unwrap_err()
                .to_string()
                .contains("--tariff")
        );
        let init = |t: &str| -> Result<LockInitConfig> {
            match parse(&[
                "lock",
                "init",
                "--key",
                "m.key",
                "--tariff",
                "t",
                "--user",
                "u.pub",
                "--company",
                "a.pub",
                "--company",
                "b.pub",
                "--t",
                t,
                "--state",
                "s",
            ])? {
                Command::Lock(LockCommand::Init(args)) => args.into_config(),
                _ => unreachable!("parsed lock init"),
            }
        };
        assert_eq!(init("3").unwrap().threshold, 3);
        assert!(init("4").unwrap_err().to_string().contains("--t 4"));
        assert!(init("1").unwrap_err().to_string().contains("--t 1"));
        let security = |args: &[&str]| -> Result<LockSecurityConfig> {
            let mut argv = vec!["lock", "security"];
            argv.extend_from_slice(args);
            match parse(&argv)? {
                Command::Lock(LockCommand::Security(args)) => args.into_config(),
                _ => unreachable!("parsed lock security"),
            }
        };
        assert!(security(&["--n", "10", "--p", "0.1"]).is_ok());
        for (args, flag) in [
            (&["--n", "0", "--p", "0.1"][..], "--n"),
            (&["--n", "10", "--p", "1.1"], "--p"),
            (&["--n", "10", "--p", "0.1", "--t", "11"], "--t"),
            (&["--n", "10", "--p", "0.1", "--target", "x"], "--target"),
        ] {
            let error = format!("{:#}", security(args).unwrap_err());
            assert!(error.contains(flag), "{args:?}: {error}");
        }
        let Command::Keygen(keygen) = parse(&["keygen", "--out", "keys/meter"]).unwrap() else {
            panic!("parsed keygen")
        };
        let keygen = keygen.into_config().unwrap();
        assert_eq!(keygen.name, "meter");
        assert_eq!(keygen.public_path, PathBuf::from("keys/meter.pub"));
    }

    #[test]
    fn round_schedule_defaults_to_quarter_hours_since_the_epoch() {
        let config = aggregate(&[]).unwrap();
        assert_eq!(
            (
                config.options.epoch_ms,
                config.options.period_ms,
                config.options.deadline_ms
            ),
            (0, 900_000, None)
        );
        let config = aggregate(&[
            "--period",
            "5m",
            "--epoch",
            "1970-01-02",
            "--deadline-ms",
            "30000",
        ])
        .unwrap();
        assert_eq!(config.options.period_ms, 300_000);
        assert_eq!(config.options.epoch_ms, 86_400_000);
        // Round 2 ends at 1 day + 15 minutes; the deadline is 30 s later.
        assert_eq!(
            config.options.round_deadline(2),
            Some(86_400_000 + 900_000 + 30_000)
        );
        assert_eq!(parse_duration_ms("1500ms", "--period").unwrap(), 1500);
        assert_eq!(parse_duration_ms("2h", "--period").unwrap(), 7_200_000);
        // As every other duration flag: bare seconds, fractions that come to whole ms.
        assert_eq!(parse_duration_ms("15", "--period").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("1.5m", "--period").unwrap(), 90_000);
        for bad in ["", "0s", "0.5ms", "15 parsecs", "-1m", "400d"] {
            let error = parse_duration_ms(bad, "--period").unwrap_err().to_string();
            assert!(error.contains("--period"), "{bad}: {error}");
        }
        let error = aggregate(&["--epoch", "tuesday"]).unwrap_err().to_string();
        assert!(error.contains("--epoch"), "{error}");
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

    #[test]
    fn durations() {
        let d = |t| parse_duration("--period", t).unwrap();
        assert_eq!(d("15m"), Duration::from_secs(900));
        assert_eq!(d("2"), Duration::from_secs(2));
        assert_eq!(d("2s"), Duration::from_secs(2));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        for bad in ["", "fast", "5 parsecs", "-1s", "400d"] {
            let error = parse_duration("--period", bad).unwrap_err().to_string();
            assert!(error.contains("--period"), "{bad}: {error}");
        }
    }

    fn meter_error(args: &[&str]) -> String {
        let mut argv = vec!["dcnet"];
        argv.extend_from_slice(args);
        let result = match Cli::try_parse_from(argv) {
            Err(e) => return e.to_string(),
            Ok(cli) => match cli.command {
                Command::Meter(MeterArgs {
                    command: MeterCommand::Read(a),
                }) => a.into_config().map(|_| ()),
                Command::Meter(MeterArgs {
                    command: MeterCommand::Sim(a),
                }) => a.into_config().map(|_| ()),
                Command::Gateway(a) => a.into_config().map(|_| ()),
                _ => unreachable!("meter or gateway"),
            },
        };
        match result {
            Ok(()) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn meter_read_fills_serial_defaults_from_the_profile() {
        let argv = [
            "dcnet",
            "meter",
            "read",
            "--port",
            "/dev/null",
            "--unit",
            "3",
            "--profile",
            "abb-b23",
        ];
        let Command::Meter(MeterArgs {
            command: MeterCommand::Read(args),
        }) = Cli::try_parse_from(argv).unwrap().command
        else {
            unreachable!("parsed meter read")
        };
        let config = args.into_config().unwrap();
        assert_eq!(config.serial.settings.describe(), "19200 8E1");
        assert_eq!((config.unit.get(), config.count), (3, Some(1)));
    }

    #[test]
    fn bad_meter_and_gateway_flags_name_their_flag() {
        let read = [
            "meter",
            "read",
            "--port",
            "/dev/null",
            "--profile",
            "sdm120",
        ];
        for (extra, flag) in [
            (&["--unit", "0"][..], "--unit"),
            (&["--unit", "248"], "--unit"),
            (&["--unit", "1", "--parity", "mark"], "--parity"),
            (&["--unit", "1", "--stop-bits", "3"], "--stop-bits"),
            (&["--unit", "1", "--baud", "7"], "--baud"),
            (&["--unit", "1", "--interval", "soon"], "--interval"),
            (&["--unit", "1", "--timeout", "0ms"], "--timeout"),
        ] {
            let mut argv = read.to_vec();
            argv.extend_from_slice(extra);
            let error = meter_error(&argv);
            assert!(error.contains(flag), "{extra:?}: {error}");
        }
        let error = meter_error(&[
            "meter",
            "read",
            "--port",
            "p",
            "--unit",
            "1",
            "--profile",
            "x1",
        ]);
        assert!(
            error.contains("--profile") && error.contains("sdm120"),
            "{error}"
        );
        let error = meter_error(&[
            "meter",
            "read",
            "--port",
            "p",
            "--unit",
            "1",
            "--profile-file",
            "/nonexistent.toml",
        ]);
        assert!(
            error.contains("--profile-file /nonexistent.toml"),
            "{error}"
        );
        let error = meter_error(&["meter", "sim", "--pty", "--profile", "em24", "--unit", "1"]);
        assert_eq!(error, "");
        let error = meter_error(&[
            "meter",
            "sim",
            "--pty",
            "--profile",
            "em24",
            "--unit",
            "1",
            "--fault",
            "boom",
        ]);
        assert!(error.contains("--fault"), "{error}");
        let error = meter_error(&[
            "meter",
            "sim",
            "--pty",
            "--profile",
            "em24",
            "--unit",
            "1",
            "--unit",
            "1",
        ]);
        assert!(error.contains("--unit 1 is given twice"), "{error}");
        let error = meter_error(&["meter", "sim", "--profile", "em24", "--unit", "1"]);
        assert!(
            error.contains("--pty") || error.contains("--port"),
            "{error}"
        );
        let gateway = [
            "gateway",
            "--port",
            "p",
            "--profile",
            "sdm120",
            "--unit",
            "1",
            "--net",
            "1",
            "--client",
            "2",
            "--out",
            "x.dclog",
        ];
        let mut argv = gateway.to_vec();
        argv.extend_from_slice(&["--keys", "/nonexistent-keys"]);
        assert!(meter_error(&argv).contains("--keys /nonexistent-keys"));
        let keys = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(keys.path(), "3 d9acda94594dd7190406acd48c726e52\n").unwrap();
        let keys_path = keys.path().to_str().unwrap();
        for (extra, flag) in [
            (&["--period", "500ms"][..], "--period"),
            (&["--rounds", "0"], "--rounds"),
            (&["--lanes", "3"], "--lanes"),
        ] {
            let mut argv = gateway.to_vec();
            argv.extend_from_slice(&["--keys", keys_path]);
            argv.extend_from_slice(extra);
            let error = meter_error(&argv);
            assert!(error.contains(flag), "{extra:?}: {error}");
        }
        let mut argv = gateway.to_vec();
        argv.extend_from_slice(&["--keys", keys_path]);
        assert_eq!(meter_error(&argv), "");
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
