//! The population simulator behind `dcnet simulate` and `dcnet demo`.
//!
//! A simulated DC net is a roster of households with random client ids, a random key graph
//! (every client at least `k` neighbours), simulation edge seeds from one master key
//! (DESIGN §2), and per round: each household's reading, a random set of dropouts, the transmit
//! frames of the present clients and the resend frames of the present neighbours of missing
//! ones. Everything is a pure function of the configuration and the seed, so runs reproduce
//! exactly whatever the thread count.
//!
//! Readings follow the BDEW H25 standard household load profile scaled to each household's
//! annual consumption, with per-interval noise, appliance spikes and, for a quarter of the
//! households, rooftop PV that lowers import and produces export.

use std::sync::OnceLock;

use engine::keystream::Keystream;
use engine::loadprofile::{Civil, H25, QUARTER_SECONDS};
use engine::superpose::{add_lanes, sub_lanes};
use engine::{EdgeSeed, EdgeSeedDeriver, GraphError, KeyGraph, master_key};
use ingest::{FrameFields, Notification, RoundResult, RoundStatus};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What the lanes of a simulated frame carry.
pub const LANE_MEANINGS: [&str; 4] = [
    "lane 0: energy imported in the interval, Wh",
    "lane 1: energy exported (rooftop PV) in the interval, Wh",
    "lane 2: 1 per household (the sum counts reporting households)",
    "lane 3: imported Wh squared (with lanes 0 and 2 gives the variance across households)",
];

/// A simulation's parameters (validated by the CLI).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of DC nets.
    pub nets: u32,
    /// Clients per net.
    pub clients: u32,
    /// Minimum neighbours per client, `k >= 3`.
    pub degree: usize,
    /// Rounds to simulate.
    pub rounds: u32,
    /// Lanes per frame, 1..=32.
    pub lanes: u8,
    /// Probability that a client misses a round.
    pub dropout: f64,
    /// The simulation seed (DESIGN §2 `sim_seed`).
    pub seed: u64,
    /// The number of the first round: quarter hours since the Unix epoch.
    pub first_round: u32,
    /// Minimum present clients for a released sum (the truth's `withheld` rule).
    pub min_participants: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nets: 4,
            clients: 100,
            degree: 4,
            rounds: 96,
            lanes: 1,
            dropout: 0.01,
            seed: 42,
            first_round: first_round_of_day(2026, 1, 12),
            min_participants: 2,
        }
    }
}

/// The round number of midnight UTC of a date: rounds count quarter hours since the epoch.
pub fn first_round_of_day(year: i64, month: u32, day: u32) -> u32 {
    let days = engine::loadprofile::days_from_civil(year, month, day).max(0) as u64;
    u32::try_from(days * 86_400 / QUARTER_SECONDS).unwrap_or(u32::MAX)
}

/// The Unix time in ms at which round `round` starts.
pub fn round_start_ms(round: u32) -> u64 {
    u64::from(round) * QUARTER_SECONDS * 1000
}

/// One simulated household.
#[derive(Debug, Clone)]
pub struct Household {
    /// Its client id.
    pub client_id: u32,
    /// Annual consumption, kWh.
    pub annual_kwh: f64,
    /// Installed PV peak power, kWp (0 without PV).
    pub pv_kwp: f64,
}

/// One net's static setup.
pub struct NetPlan {
    /// The net's id.
    pub dc_net_id: u32,
    /// Its key graph.
    pub graph: KeyGraph,
    /// Its households, in roster (ascending id) order.
    pub households: Vec<Household>,
    /// Edge seeds, in `graph.edges()` order, contiguous for the batch key kernels.
    seeds: Vec<EdgeSeed>,
    /// The ends of every edge as roster indices `(lower id, higher id)`, in `graph.edges()`
    /// order: the lower id adds the edge key, the higher one subtracts it (DESIGN §1).
    ends: Vec<(u32, u32)>,
    /// Per household, what the reading model needs, in roster order.
    homes: Vec<Home>,
    /// The edges (indices into `ends`) of roster index `i` are
    /// `incident_edges[incident_start[i]..incident_start[i + 1]]`.
    incident_start: Vec<usize>,
    incident_edges: Vec<u32>,
}

/// The net id of the `index`-th simulated net.
pub fn net_id(index: u32) -> u32 {
    index + 1
}

/// SplitMix64's finaliser: a cheap, well-mixed hash for per-reading randomness, so that any
/// reading can be computed on its own, in any order, on any thread.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in [0, 1) keyed by `parts`: the hash chain `mix64(... mix64(0x5EED ^ p0) ...)`.
///
/// The chain is a fold, so draws sharing a key prefix can continue from the prefix's hash
/// ([`chain`], [`to_unit`]) and get exactly the same value.
fn unit(parts: &[u64]) -> f64 {
    to_unit(parts.iter().fold(HASH_START, |acc, &p| chain(acc, p)))
}

const HASH_START: u64 = 0x5EED;

fn chain(hash: u64, part: u64) -> u64 {
    mix64(hash ^ part)
}

fn to_unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Salt of the second hash behind a household's draws in a round (see [`Draws`]).
const SALT_DRAWS_B: u64 = 2;
const SALT_CLOUD: u64 = 6;

/// Simulated energies are integers in units of 2^-36 Wh: a reading then costs a few integer
/// multiplications, with no float conversions or table interpolation per frame (the reading
/// model was the largest part of the simulator's profile). The unit is fine enough that the
/// rounding to whole Wh at the end is the only one that matters.
const WH_SHIFT: u32 = 36;
/// Half a Wh in that unit, for rounding to the nearest Wh.
const HALF_WH: u64 = 1 << (WH_SHIFT - 1);
/// The H25 share of the annual consumption in a quarter hour is held in units of 2^-40; with
/// annual consumptions below 2^23 Wh the product stays below 2^63.
const SHARE_SHIFT: u32 = 40;
/// Noise factors are held in units of 2^-16.
const NOISE_SHIFT: u32 = 16;

/// A household spikes (kettle, oven, washing machine) in 3% of the quarter hours: the spike
/// draw (32 bits) is below this threshold.
const SPIKE_THRESHOLD: u64 = (1 << 32) * 3 / 100;
/// A spike adds 100 Wh ...
const SPIKE_BASE: u64 = 100 << WH_SHIFT;
/// ... plus up to 500 Wh, uniformly: a spiking draw is uniform below the threshold, so it is
/// scaled by 500 Wh / threshold.
const SPIKE_STEP: u64 = (500 << WH_SHIFT) / SPIKE_THRESHOLD;

impl NetPlan {
    /// Draws net `index`: client ids, households, key graph and edge seeds.
    pub fn new(config: &SimConfig, index: u32) -> Result<Self, GraphError> {
        let dc_net_id = net_id(index);
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(config.seed) ^ u64::from(dc_net_id));
        // Distinct random ids, ascending. Each pass draws exactly as many as are still
        // missing, so this stops at the same draw as inserting one at a time into a set would.
        let wanted = config.clients as usize;
        let mut ids: Vec<u32> = Vec::with_capacity(wanted);
        while ids.len() < wanted {
            for _ in ids.len()..wanted {
                ids.push(rng.gen_range(1..100_000_000u32));
            }
            ids.sort_unstable();
            ids.dedup();
        }
        let mut shuffled = ids.clone();
        shuffled.shuffle(&mut rng);
        let graph = KeyGraph::random(dc_net_id, &shuffled, config.degree, &mut rng)?;
        let households: Vec<Household> = ids
            .iter()
            .map(|&client_id| Household {
                client_id,
                // Log-uniform between 1,500 and 6,000 kWh a year.
                annual_kwh: 1500.0 * 4f64.powf(rng.r#gen::<f64>()),
                pv_kwp: if rng.gen_bool(0.25) {
                    rng.gen_range(3.0..10.0)
                } else {
                    0.0
                },
            })
            .collect();
        let deriver = EdgeSeedDeriver::new(&master_key(config.seed));
        let seeds = graph
            .edges()
            .map(|(a, b)| deriver.derive(dc_net_id, a, b))
            .collect();
        // Roster order is ascending id, so the lower id of an edge has the lower index.
        let index = |client: u32| -> u32 {
            ids.binary_search(&client)
                .map_or(0, |i| u32::try_from(i).unwrap_or(u32::MAX))
        };
        let ends: Vec<(u32, u32)> = graph.edges().map(|(a, b)| (index(a), index(b))).collect();
        let (incident_start, incident_edges) = incidence(ids.len(), &ends);
        let homes = households
            .iter()
            .map(|household| Home::new(config, dc_net_id, household))
            .collect();
        Ok(Self {
            dc_net_id,
            graph,
            households,
            seeds,
            ends,
            homes,
            incident_start,
            incident_edges,
        })
    }

    /// Edge seeds in `graph.edges()` order.
    pub fn seeds(&self) -> &[EdgeSeed] {
        &self.seeds
    }

    /// The edges (indices into `ends`) of the client at roster index `i`.
    fn incident(&self, i: usize) -> &[u32] {
        &self.incident_edges[self.incident_start[i]..self.incident_start[i + 1]]
    }
}

/// The edges of every client, as compressed lists: `(start, edges)` with the edges of
/// roster index `i` at `edges[start[i]..start[i + 1]]`.
fn incidence(clients: usize, ends: &[(u32, u32)]) -> (Vec<usize>, Vec<u32>) {
    let mut start = vec![0usize; clients + 1];
    for &(low, high) in ends {
        start[low as usize + 1] += 1;
        start[high as usize + 1] += 1;
    }
    for i in 0..clients {
        start[i + 1] += start[i];
    }
    let mut next = start.clone();
    let mut edges = vec![0u32; start[clients]];
    for (e, &(low, high)) in ends.iter().enumerate() {
        for end in [low, high] {
            edges[next[end as usize]] = e as u32;
            next[end as usize] += 1;
        }
    }
    (start, edges)
}

/// Everything about a round that is the same for every household of a net, in fixed point.
struct RoundSetting {
    /// The share of a household's annual consumption drawn in the quarter hour (BDEW H25), in
    /// units of 2^-40.
    load_share: u64,
    /// PV energy per Wp installed in the quarter hour, in units of 2^-36 Wh (0 at night).
    pv_per_wp: u64,
}

impl RoundSetting {
    fn new(config: &SimConfig, net: u32, round: u32) -> Self {
        let start = u64::from(round) * QUARTER_SECONDS;
        let civil = Civil::from_unix_seconds(start);
        let day = start / 86_400;
        let cloud = 0.2 + 0.8 * unit(&[config.seed, u64::from(net), day, SALT_CLOUD]);
        // H25 gives Wh per kWh of annual consumption; per Wh it is a thousandth of that.
        let share = H25::get().wh(civil.month, civil.day_type(), civil.quarter, 1.0) / 1000.0;
        let sky = Sky::new(civil.month, civil.quarter, cloud);
        Self {
            load_share: to_fixed(share, SHARE_SHIFT),
            pv_per_wp: to_fixed(sky.pv_wh(0.001), WH_SHIFT),
        }
    }
}

/// `value · 2^shift`, rounded, for a non-negative `value` well inside the u64 range.
fn to_fixed(value: f64, shift: u32) -> u64 {
    (value * (1u64 << shift) as f64).round() as u64
}

/// One household as the reading model sees it: the hash prefix of its draws and its
/// constants in fixed point.
#[derive(Debug, Clone, Copy)]
struct Home {
    /// The hash of `(sim seed, net, client id)`: the common prefix of all its per-round
    /// random draws (see [`unit`]).
    prefix: u64,
    /// Annual consumption, Wh (below 2^23).
    annual_wh: u64,
    /// Installed PV peak power, Wp (0 without PV).
    pv_wp: u64,
}

impl Home {
    fn new(config: &SimConfig, net: u32, household: &Household) -> Self {
        Self {
            prefix: household_prefix(config, net, household.client_id),
            annual_wh: to_fixed(household.annual_kwh * 1000.0, 0),
            pv_wp: to_fixed(household.pv_kwp * 1000.0, 0),
        }
    }
}

/// A household's random draws for one round: two 64-bit hashes, cut into independent
/// fields (dropout and noise from the first, spike and timestamp from the second). 32 bits
/// give plenty of resolution for a 1% dropout, a 3% spike or a timestamp in milliseconds,
/// and two hashes cost less than one per draw.
#[derive(Clone, Copy, Default)]
struct Draws {
    a: u64,
    b: u64,
}

impl Draws {
    fn new(prefix: u64, round: u32) -> Self {
        let a = chain(prefix, u64::from(round));
        Self {
            a,
            b: chain(a, SALT_DRAWS_B),
        }
    }

    /// Uniform in 0..2^32, compared against [`dropout_threshold`].
    fn dropout(self) -> u64 {
        self.a >> 32
    }

    /// Uniform in 0..NOISE_BINS.
    fn noise_bin(self) -> usize {
        ((self.a as u32) >> (32 - NOISE_BITS)) as usize
    }

    /// Uniform in 0..2^32, compared against [`SPIKE_THRESHOLD`].
    fn spike(self) -> u64 {
        self.b >> 32
    }

    /// Uniform in 0..spread_ms (below 2^32).
    fn offset_ms(self, spread_ms: u64) -> u64 {
        (u64::from(self.b as u32) * spread_ms) >> 32
    }
}

/// The dropout draws (uniform in 0..2^32) below which a client misses a round.
fn dropout_threshold(dropout: f64) -> u64 {
    to_fixed(dropout.clamp(0.0, 1.0), 32)
}

fn household_prefix(config: &SimConfig, net: u32, client: u32) -> u64 {
    [config.seed, u64::from(net), u64::from(client)]
        .into_iter()
        .fold(HASH_START, chain)
}

/// The reading of `household` in `round`, lane by lane (see [`LANE_MEANINGS`]).
pub fn reading(config: &SimConfig, net: u32, household: &Household, round: u32, out: &mut [u64]) {
    let home = Home::new(config, net, household);
    let setting = RoundSetting::new(config, net, round);
    let (import, export) = import_export(
        &setting,
        &home,
        Draws::new(home.prefix, round),
        noise_table(),
    );
    fill_lanes(import, export, out);
}

/// The household's Wh imported and exported in the round.
#[inline]
fn import_export(
    setting: &RoundSetting,
    home: &Home,
    draws: Draws,
    noise: &[u32; NOISE_BINS],
) -> (u64, u64) {
    // The H25 load scaled to the household (2^-20 Wh, below 2^31), times the multiplicative
    // log-normal noise (2^-16).
    let base = (home.annual_wh * setting.load_share) >> (SHARE_SHIFT - (WH_SHIFT - NOISE_SHIFT));
    let mut load = base * u64::from(noise[draws.noise_bin()]);
    let spike = draws.spike();
    if spike < SPIKE_THRESHOLD {
        load += SPIKE_BASE + spike * SPIKE_STEP;
    }
    let pv = home.pv_wp * setting.pv_per_wp;
    let import = (load.saturating_sub(pv) + HALF_WH) >> WH_SHIFT;
    let export = (pv.saturating_sub(load) + HALF_WH) >> WH_SHIFT;
    (import, export)
}

fn fill_lanes(import: u64, export: u64, out: &mut [u64]) {
    for (lane, value) in out.iter_mut().enumerate() {
        *value = match lane {
            0 => import,
            1 => export,
            2 => 1,
            3 => import * import,
            _ => 0,
        };
    }
}

/// Equal-probability bins of the tabulated noise distribution, 2^NOISE_BITS.
const NOISE_BITS: u32 = 12;
const NOISE_BINS: usize = 1 << NOISE_BITS;

/// The log-normal noise factor `exp(0.35 · z)`, `z` standard normal, in units of 2^-16, at
/// the midpoints of [`NOISE_BINS`] equal-probability bins: a uniform bin is an
/// inverse-CDF sample, a lookup instead of the `ln`, `cos` and `exp` of Box-Muller. The
/// table (16 KiB) stays in the L1 cache; the tails are cut at about ±3.7 sigma.
fn noise_table() -> &'static [u32; NOISE_BINS] {
    static TABLE: OnceLock<Box<[u32; NOISE_BINS]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([0u32; NOISE_BINS]);
        for (i, factor) in table.iter_mut().enumerate() {
            let z = inverse_normal_cdf((i as f64 + 0.5) / NOISE_BINS as f64);
            // At most exp(0.35 · 3.7) · 2^16 < 2^19.
            *factor = to_fixed((0.35 * z).exp(), NOISE_SHIFT) as u32;
        }
        table
    })
}

/// The standard normal quantile function, by P. J. Acklam's rational approximation (relative
/// error below 1.2e-9), for `p` in (0, 1).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// The sun in one quarter hour of one day: a sine over the daylight hours of the month, scaled
/// by the season's peak irradiance and the day's cloud factor.
struct Sky {
    peak: f64,
    /// The sine term of the quarter hour, `None` at night.
    shape: Option<f64>,
    cloud: f64,
}

impl Sky {
    fn new(month: u32, quarter: usize, cloud: f64) -> Self {
        let season = (2.0 * std::f64::consts::PI * (f64::from(month) - 0.5) / 12.0).cos();
        let daylight_hours = 12.0 - 4.3 * season;
        let peak = 0.55 - 0.4 * season;
        let hour = quarter as f64 / 4.0 + 0.125;
        let sunrise = 11.5 - daylight_hours / 2.0;
        let phase = (hour - sunrise) / daylight_hours;
        let shape = (0.0..=1.0)
            .contains(&phase)
            .then(|| (std::f64::consts::PI * phase).sin().powf(1.3));
        Self { peak, shape, cloud }
    }

    /// PV energy of a `kwp` installation in the quarter hour.
    fn pv_wh(&self, kwp: f64) -> f64 {
        match self.shape {
            Some(shape) => {
                // kWp · 1000 W · irradiance share · 0.25 h · 0.8 performance ratio.
                kwp * 1000.0 * self.peak * shape * self.cloud * 0.25 * 0.8
            }
            None => 0.0,
        }
    }
}

/// Whether client `client` of net `net` misses `round`.
pub fn is_dropout(config: &SimConfig, net: u32, client: u32, round: u32) -> bool {
    let draws = Draws::new(household_prefix(config, net, client), round);
    draws.dropout() < dropout_threshold(config.dropout)
}

/// Receives what a simulated round produces.
pub trait SimSink {
    /// A frame for the round log: its fields and lanes.
    fn frame(&mut self, fields: &FrameFields, lanes: &[u64]);
    /// A present client's plaintext reading (for `readings.csv`).
    fn reading(&mut self, net: u32, client: u32, round: u32, lanes: &[u64]);
    /// The expected `global.csv` row of the round.
    fn truth(&mut self, row: RoundResult);
    /// Round `round` is complete (for progress reports).
    fn round_done(&mut self, round: u32) {
        let _ = round;
    }
}

/// Counters of one simulated net.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Transmit frames.
    pub transmits: u64,
    /// Resend frames.
    pub resends: u64,
    /// Client-rounds missed.
    pub dropouts: u64,
}

impl NetStats {
    /// Adds another net's counters.
    pub fn merge(&mut self, other: NetStats) {
        self.transmits += other.transmits;
        self.resends += other.resends;
        self.dropouts += other.dropouts;
    }
}

/// Simulates every round of one net into `sink`, with the fastest key backend of this CPU.
pub fn run_net(config: &SimConfig, plan: &NetPlan, sink: &mut impl SimSink) -> NetStats {
    run_net_with(config, plan, &Keystream::new(), sink)
}

/// Simulates every round of one net into `sink`: per round the dropouts, the present
/// households' readings, every edge key in one batch, the transmit frames in roster order, the
/// resend frames of the present neighbours of missing clients in roster order, and the truth.
pub fn run_net_with(
    config: &SimConfig,
    plan: &NetPlan,
    keystream: &Keystream,
    sink: &mut impl SimSink,
) -> NetStats {
    let lanes = usize::from(config.lanes);
    let n = plan.households.len();
    let net = plan.dc_net_id;
    let mut stats = NetStats::default();
    let mut readings = vec![0u64; n * lanes];
    let mut masked = vec![0u64; n * lanes];
    let mut corrected = vec![0u64; n * lanes];
    let mut keys = vec![0u64; plan.seeds.len() * lanes];
    let mut missing = vec![false; n];
    let mut draws = vec![Draws::default(); n];
    // Roster indices of the round's missing clients, and of the present neighbours that
    // must resend (each once, in roster order).
    let mut dropped: Vec<usize> = Vec::new();
    let mut resenders: Vec<usize> = Vec::new();
    let row = |i: usize| i * lanes..(i + 1) * lanes;
    let noise = noise_table();
    let dropout_threshold = dropout_threshold(config.dropout);
    for round in config.first_round..config.first_round.saturating_add(config.rounds) {
        let setting = RoundSetting::new(config, net, round);
        dropped.clear();
        // Missing clients' readings are computed too, never used: cheaper than a branch.
        let households = plan.homes.iter().zip(&mut draws).zip(&mut missing);
        for (i, ((home, draw), gone)) in households.enumerate() {
            *draw = Draws::new(home.prefix, round);
            *gone = draw.dropout() < dropout_threshold;
            if *gone {
                dropped.push(i);
            }
        }
        if lanes == 1 {
            for ((home, &draw), reading) in plan.homes.iter().zip(&draws).zip(&mut readings) {
                *reading = import_export(&setting, home, draw, noise).0;
            }
        } else {
            let households = plan.homes.iter().zip(&draws);
            for ((home, &draw), out) in households.zip(readings.chunks_exact_mut(lanes)) {
                let (import, export) = import_export(&setting, home, draw, noise);
                fill_lanes(import, export, out);
            }
        }
        // The lanes are validated by the CLI (1..=32) and `keys` holds one row per seed, so
        // the batch cannot fail; the error path only leaves the keys zero.
        let _ = keystream.fill_edges(&plan.seeds, round, lanes, &mut keys);
        masked.copy_from_slice(&readings);
        mask(&plan.ends, &keys, lanes, &mut masked);
        // A resend leaves out the keys shared with missing neighbours: undo them. Only the
        // edges of the few missing clients are looked at.
        resenders.clear();
        for &gone in &dropped {
            for &e in plan.incident(gone) {
                let e = e as usize;
                let (low, high) = (plan.ends[e].0 as usize, plan.ends[e].1 as usize);
                let present = if low == gone { high } else { low };
                if missing[present] {
                    continue;
                }
                if !resenders.contains(&present) {
                    resenders.push(present);
                    corrected[row(present)].copy_from_slice(&masked[row(present)]);
                }
                let key = &keys[row(e)];
                if present == low {
                    sub_lanes(&mut corrected[row(present)], key);
                } else {
                    add_lanes(&mut corrected[row(present)], key);
                }
            }
        }
        resenders.sort_unstable();
        let round_start = round_start_ms(round);
        let timestamp = |draws: Draws, base_s: u64, spread_s: u64| {
            round_start + base_s * 1000 + draws.offset_ms(spread_s * 1000)
        };
        let mut fields = FrameFields {
            notification: Notification::Transmit,
            transmission: true,
            dc_net_id: net,
            client_id: 0,
            round,
            timestamp_ms: 0,
        };
        let mut sum = vec![0u64; lanes];
        for (i, (household, &draw)) in plan.households.iter().zip(&draws).enumerate() {
            if missing[i] {
                continue;
            }
            // One lane, the common case, without computing row ranges.
            let (reading, masked) = if lanes == 1 {
                (
                    std::slice::from_ref(&readings[i]),
                    std::slice::from_ref(&masked[i]),
                )
            } else {
                (&readings[row(i)], &masked[row(i)])
            };
            add_lanes(&mut sum, reading);
            sink.reading(net, household.client_id, round, reading);
            fields.client_id = household.client_id;
            fields.timestamp_ms = timestamp(draw, 1, 120);
            sink.frame(&fields, masked);
        }
        fields.notification = Notification::Resend;
        for &i in &resenders {
            fields.client_id = plan.households[i].client_id;
            fields.timestamp_ms = timestamp(draws[i], 300, 300);
            sink.frame(&fields, &corrected[row(i)]);
        }
        let present = n - dropped.len();
        let resent = resenders.len();
        stats.transmits += present as u64;
        stats.dropouts += dropped.len() as u64;
        stats.resends += resent as u64;
        sink.round_done(round);
        if present == 0 {
            // Nothing of this round reaches the provider, so it has no row either.
            continue;
        }
        let status = if present < config.min_participants {
            RoundStatus::Withheld
        } else {
            RoundStatus::Ok
        };
        sink.truth(RoundResult {
            dc_net_id: net,
            round,
            expected: n,
            present,
            resent,
            status,
            sum: (status == RoundStatus::Ok).then_some(sum),
            exposed: Vec::new(),
        });
    }
    stats
}

/// Adds every edge key to the lower id's row of `masked` and subtracts it from the higher
/// id's (DESIGN §1). One lane, the common case, gets a loop without slicing.
fn mask(ends: &[(u32, u32)], keys: &[u64], lanes: usize, masked: &mut [u64]) {
    if lanes == 1 {
        for (&(low, high), &key) in ends.iter().zip(keys) {
            let low = &mut masked[low as usize];
            *low = low.wrapping_add(key);
            let high = &mut masked[high as usize];
            *high = high.wrapping_sub(key);
        }
        return;
    }
    for (&(low, high), key) in ends.iter().zip(keys.chunks_exact(lanes)) {
        let (low, high) = (low as usize * lanes, high as usize * lanes);
        add_lanes(&mut masked[low..low + lanes], key);
        sub_lanes(&mut masked[high..high + lanes], key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::Frame;

    struct Collect {
        frames: Vec<Frame>,
        truth: Vec<RoundResult>,
        readings: u64,
    }

    impl SimSink for Collect {
        fn frame(&mut self, fields: &FrameFields, lanes: &[u64]) {
            self.frames.push(Frame {
                notification: fields.notification,
                transmission: fields.transmission,
                dc_net_id: fields.dc_net_id,
                client_id: fields.client_id,
                round: fields.round,
                timestamp_ms: fields.timestamp_ms,
                lanes: lanes.to_vec(),
            });
        }
        fn reading(&mut self, _: u32, _: u32, _: u32, _: &[u64]) {
            self.readings += 1;
        }
        fn truth(&mut self, row: RoundResult) {
            self.truth.push(row);
        }
    }

    #[test]
    fn masked_frames_sum_to_the_truth_when_nobody_drops_out() {
        let config = SimConfig {
            nets: 1,
            clients: 12,
            rounds: 3,
            lanes: 4,
            dropout: 0.0,
            ..Default::default()
        };
        let plan = NetPlan::new(&config, 0).unwrap();
        let mut sink = Collect {
            frames: vec![],
            truth: vec![],
            readings: 0,
        };
        run_net(&config, &plan, &mut sink);
        assert_eq!(sink.frames.len(), 36);
        for row in &sink.truth {
            let mut sum = vec![0u64; 4];
            for f in sink.frames.iter().filter(|f| f.round == row.round) {
                engine::add_lanes(&mut sum, &f.lanes);
            }
            assert_eq!(Some(sum.clone()), row.sum);
            // Lane 2 counts households.
            assert_eq!(sum[2], 12);
        }
    }

    #[test]
    fn readings_are_plausible_household_loads() {
        let config = SimConfig::default();
        let plan = NetPlan::new(&config, 0).unwrap();
        let mut total = 0u64;
        let mut out = [0u64; 2];
        for h in &plan.households {
            assert!((1500.0..=6000.0).contains(&h.annual_kwh));
            for round in config.first_round..config.first_round + 96 {
                reading(&config, 1, h, round, &mut out);
                assert!(out[0] < 5_000, "{out:?}");
                total += out[0];
            }
        }
        // A January day: about 1/365 of the annual consumption on average, i.e. roughly
        // 3,400 kWh / 365 = 9.4 kWh per household; allow a wide band for PV and noise.
        let per_household_kwh = total as f64 / 1000.0 / plan.households.len() as f64;
        assert!(
            (4.0..20.0).contains(&per_household_kwh),
            "{per_household_kwh}"
        );
    }

    #[test]
    fn inverse_normal_cdf_matches_known_quantiles() {
        // Standard normal quantiles from statistical tables.
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_985),
            (0.01, -2.326_347_874),
            (0.001, -3.090_232_306),
            (0.9999, 3.719_016_485),
        ] {
            assert!((inverse_normal_cdf(p) - z).abs() < 1e-7, "p = {p}");
        }
    }

    #[test]
    fn noise_is_log_normal_with_sigma_0_35() {
        let logs: Vec<f64> = noise_table()
            .iter()
            .map(|&factor| (f64::from(factor) / 65_536.0).ln() / 0.35)
            .collect();
        let n = logs.len() as f64;
        let mean = logs.iter().sum::<f64>() / n;
        let var = logs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-3, "{mean}");
        // The tails beyond the outermost bins are cut, which loses a little variance.
        assert!((0.98..=1.0).contains(&var), "{var}");
        // The median factor is 1 and the upper quartile sits at z = 0.6745 (bin 3072 of
        // 4096 has its midpoint at p = 0.75012, z = 0.6749).
        assert!((logs[2047].abs() + logs[2048].abs()) < 2e-3);
        assert!((logs[3072] - 0.674_49).abs() < 1e-3, "{}", logs[3072]);
    }

    #[test]
    fn dropouts_and_spikes_come_at_their_rates() {
        let config = SimConfig {
            dropout: 0.01,
            ..SimConfig::default()
        };
        let (mut dropped, mut spiked, mut total) = (0u32, 0u32, 0u32);
        for client in 0..1000 {
            for round in 0..100 {
                let draws = Draws::new(household_prefix(&config, 1, client), round);
                dropped += u32::from(is_dropout(&config, 1, client, round));
                spiked += u32::from(draws.spike() < SPIKE_THRESHOLD);
                total += 1;
            }
        }
        // 100,000 draws: the standard deviations are 0.03% and 0.05%.
        let rate = |count: u32| f64::from(count) / f64::from(total);
        assert!((rate(dropped) - 0.01).abs() < 0.0015, "{}", rate(dropped));
        assert!((rate(spiked) - 0.03).abs() < 0.0025, "{}", rate(spiked));
    }

    #[test]
    fn spikes_add_100_to_600_wh() {
        let lowest = SPIKE_BASE >> WH_SHIFT;
        let highest =
            (SPIKE_BASE + (SPIKE_THRESHOLD - 1) * SPIKE_STEP) as f64 / (1u64 << WH_SHIFT) as f64;
        assert_eq!(lowest, 100);
        assert!((599.99..600.0).contains(&highest), "{highest}");
    }

    #[test]
    fn plans_are_reproducible_and_ids_are_not_contiguous() {
        let config = SimConfig::default();
        let a = NetPlan::new(&config, 2).unwrap();
        let b = NetPlan::new(&config, 2).unwrap();
        assert_eq!(a.graph, b.graph);
        assert!(a.graph.min_degree() >= 4 && a.graph.is_connected());
        let ids = a.graph.clients();
        assert!(ids.windows(2).any(|w| w[1] != w[0] + 1));
    }
}
