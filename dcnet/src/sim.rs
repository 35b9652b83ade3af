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

use std::collections::BTreeSet;
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
    /// Per household, the hash of `(sim seed, net, client id)`: the common prefix of all its
    /// per-round random draws (see [`unit`]).
    prefixes: Vec<u64>,
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

/// Salts of the two hashes behind a household's draws in a round (see [`Draws`]).
const SALT_DRAWS_A: u64 = 1;
const SALT_DRAWS_B: u64 = 2;
const SALT_SPIKE_SIZE: u64 = 5;
const SALT_CLOUD: u64 = 6;

impl NetPlan {
    /// Draws net `index`: client ids, households, key graph and edge seeds.
    pub fn new(config: &SimConfig, index: u32) -> Result<Self, GraphError> {
        let dc_net_id = net_id(index);
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(config.seed) ^ u64::from(dc_net_id));
        let mut ids = BTreeSet::new();
        while ids.len() < config.clients as usize {
            ids.insert(rng.gen_range(1..100_000_000u32));
        }
        let ids: Vec<u32> = ids.into_iter().collect();
        let mut shuffled = ids.clone();
        shuffled.shuffle(&mut rng);
        let graph = KeyGraph::random(dc_net_id, &shuffled, config.degree, &mut rng)?;
        let households = ids
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
        let ends = graph.edges().map(|(a, b)| (index(a), index(b))).collect();
        let prefixes = ids
            .iter()
            .map(|&client| household_prefix(config, dc_net_id, client))
            .collect();
        Ok(Self {
            dc_net_id,
            graph,
            households,
            seeds,
            ends,
            prefixes,
        })
    }

    /// Edge seeds in `graph.edges()` order.
    pub fn seeds(&self) -> &[EdgeSeed] {
        &self.seeds
    }
}

/// Everything about a round that is the same for every household of a net.
struct RoundSetting {
    /// Wh drawn in the quarter hour per kWh of annual consumption (BDEW H25).
    wh_per_annual_kwh: f64,
    sky: Sky,
}

impl RoundSetting {
    fn new(config: &SimConfig, net: u32, round: u32) -> Self {
        let start = u64::from(round) * QUARTER_SECONDS;
        let civil = Civil::from_unix_seconds(start);
        let day = start / 86_400;
        let cloud = 0.2 + 0.8 * unit(&[config.seed, u64::from(net), day, SALT_CLOUD]);
        Self {
            wh_per_annual_kwh: H25::get().wh(civil.month, civil.day_type(), civil.quarter, 1.0),
            sky: Sky::new(civil.month, civil.quarter, cloud),
        }
    }
}

/// A household's random draws for one round.
///
/// Two hashes continue the household's prefix with the round, and each gives two 32-bit
/// uniform draws: plenty of resolution for a 1% dropout or a noise quantile, at half the
/// hashing of one hash per draw (hashing was a fifth of the simulator's time).
#[derive(Clone, Copy, Default)]
struct Draws {
    round_hash: u64,
    a: u64,
    b: u64,
}

// Through u32: converting a u64 to f64 takes a branchy sequence on baseline x86-64, a u32
// one instruction.
fn high_unit(hash: u64) -> f64 {
    f64::from((hash >> 32) as u32) * (1.0 / 4_294_967_296.0)
}

fn low_unit(hash: u64) -> f64 {
    f64::from(hash as u32) * (1.0 / 4_294_967_296.0)
}

impl Draws {
    fn new(prefix: u64, round: u32) -> Self {
        let round_hash = chain(prefix, u64::from(round));
        Self {
            round_hash,
            a: chain(round_hash, SALT_DRAWS_A),
            b: chain(round_hash, SALT_DRAWS_B),
        }
    }

    fn dropout(self) -> f64 {
        high_unit(self.a)
    }

    fn noise(self) -> f64 {
        low_unit(self.a)
    }

    fn spike(self) -> f64 {
        high_unit(self.b)
    }

    fn timestamp(self) -> f64 {
        low_unit(self.b)
    }

    /// Only spiking households need this one, so it is hashed on demand.
    fn spike_size(self) -> f64 {
        to_unit(chain(self.round_hash, SALT_SPIKE_SIZE))
    }
}

fn household_prefix(config: &SimConfig, net: u32, client: u32) -> u64 {
    [config.seed, u64::from(net), u64::from(client)]
        .into_iter()
        .fold(HASH_START, chain)
}

/// The reading of `household` in `round`, lane by lane (see [`LANE_MEANINGS`]).
pub fn reading(config: &SimConfig, net: u32, household: &Household, round: u32, out: &mut [u64]) {
    let prefix = household_prefix(config, net, household.client_id);
    let setting = RoundSetting::new(config, net, round);
    reading_in(&setting, household, Draws::new(prefix, round), out);
}

#[inline]
fn reading_in(setting: &RoundSetting, household: &Household, draws: Draws, out: &mut [u64]) {
    // Multiplicative log-normal noise (sigma 0.35) and occasional appliance spikes.
    let mut load =
        setting.wh_per_annual_kwh * household.annual_kwh * noise_multiplier(draws.noise());
    if draws.spike() < 0.03 {
        load += 100.0 + 500.0 * draws.spike_size();
    }
    let pv = setting.sky.pv_wh(household.pv_kwp);
    // Both are >= 0, so adding one half and truncating rounds to nearest. `f64::round` is a
    // libm call and `as u64` a branchy sequence on baseline x86-64; both showed up in
    // simulation profiles, while `as i64` is one instruction (plus saturation).
    let import = ((load - pv).max(0.0) + 0.5) as i64 as u64;
    let export = ((pv - load).max(0.0) + 0.5) as i64 as u64;
    if let [only] = out {
        *only = import;
        return;
    }
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

/// Equal-probability bins of the tabulated noise distribution.
const NOISE_BINS: usize = 1024;

/// The log-normal noise factor `exp(0.35 · z)`, `z` standard normal, for a uniform draw `u`.
///
/// Inverse-CDF sampling from a table of the factor at the midpoints of [`NOISE_BINS`]
/// equal-probability bins, interpolated linearly: a table lookup instead of the `ln`, `cos`
/// and `exp` of Box-Muller, which dominated the simulator's profile. The table (8 KiB) stays
/// in the L1 cache; the tails are cut at about ±3.1 sigma.
fn noise_multiplier(u: f64) -> f64 {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..NOISE_BINS)
            .map(|i| (0.35 * inverse_normal_cdf((i as f64 + 0.5) / NOISE_BINS as f64)).exp())
            .collect()
    });
    let position = (u * NOISE_BINS as f64 - 0.5).clamp(0.0, (NOISE_BINS - 1) as f64);
    // Through u32, for the same reason as in `high_unit`.
    let i = (position as u32 as usize).min(NOISE_BINS - 2);
    let fraction = position - i as f64;
    table[i] + fraction * (table[i + 1] - table[i])
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
            Some(shape) if kwp != 0.0 => {
                // kWp · 1000 W · irradiance share · 0.25 h · 0.8 performance ratio.
                kwp * 1000.0 * self.peak * shape * self.cloud * 0.25 * 0.8
            }
            _ => 0.0,
        }
    }
}

/// Whether client `client` of net `net` misses `round`.
pub fn is_dropout(config: &SimConfig, net: u32, client: u32, round: u32) -> bool {
    let draws = Draws::new(household_prefix(config, net, client), round);
    config.dropout > 0.0 && draws.dropout() < config.dropout
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
    let mut needs_resend = vec![false; n];
    // (roster index of the present end, edge index) of every edge with one end missing.
    let mut corrections: Vec<(usize, usize)> = Vec::new();
    let row = |i: usize| i * lanes..(i + 1) * lanes;
    for round in config.first_round..config.first_round.saturating_add(config.rounds) {
        let setting = RoundSetting::new(config, net, round);
        let mut any_missing = false;
        for i in 0..n {
            draws[i] = Draws::new(plan.prefixes[i], round);
            missing[i] = config.dropout > 0.0 && draws[i].dropout() < config.dropout;
            any_missing |= missing[i];
            if !missing[i] {
                reading_in(
                    &setting,
                    &plan.households[i],
                    draws[i],
                    &mut readings[row(i)],
                );
            }
        }
        // The lanes are validated by the CLI (1..=32) and `keys` holds one row per seed, so
        // the batch cannot fail; the error path only leaves the keys zero.
        let _ = keystream.fill_edges(&plan.seeds, round, lanes, &mut keys);
        masked.copy_from_slice(&readings);
        mask(&plan.ends, &keys, lanes, &mut masked);
        needs_resend.fill(false);
        corrections.clear();
        if any_missing {
            for (e, &(low, high)) in plan.ends.iter().enumerate() {
                let (low, high) = (low as usize, high as usize);
                match (missing[low], missing[high]) {
                    (false, true) => corrections.push((low, e)),
                    (true, false) => corrections.push((high, e)),
                    _ => {}
                }
            }
        }
        // A resend leaves out the keys shared with missing neighbours: undo them.
        for &(i, e) in &corrections {
            if !needs_resend[i] {
                needs_resend[i] = true;
                corrected[row(i)].copy_from_slice(&masked[row(i)]);
            }
            let key = &keys[row(e)];
            if plan.ends[e].0 as usize == i {
                sub_lanes(&mut corrected[row(i)], key);
            } else {
                add_lanes(&mut corrected[row(i)], key);
            }
        }
        let round_start = round_start_ms(round);
        let timestamp = |draws: Draws, base_s: u64, spread_s: u64| {
            round_start
                + base_s * 1000
                + (draws.timestamp() * (spread_s * 1000) as f64) as i64 as u64
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
        let mut present = 0;
        for (i, household) in plan.households.iter().enumerate() {
            let client = household.client_id;
            if missing[i] {
                stats.dropouts += 1;
                continue;
            }
            present += 1;
            let reading = &readings[row(i)];
            add_lanes(&mut sum, reading);
            sink.reading(net, client, round, reading);
            fields.client_id = client;
            fields.timestamp_ms = timestamp(draws[i], 1, 120);
            sink.frame(&fields, &masked[row(i)]);
            stats.transmits += 1;
        }
        let mut resent = 0;
        fields.notification = Notification::Resend;
        for (i, household) in plan.households.iter().enumerate() {
            if !needs_resend[i] {
                continue;
            }
            fields.client_id = household.client_id;
            fields.timestamp_ms = timestamp(draws[i], 300, 300);
            sink.frame(&fields, &corrected[row(i)]);
            resent += 1;
            stats.resends += 1;
        }
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
        let n = 100_000;
        let logs: Vec<f64> = (0..n)
            .map(|i| noise_multiplier((i as f64 + 0.5) / n as f64).ln() / 0.35)
            .collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let var = logs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 1e-3, "{mean}");
        // The tails beyond the outermost bins are cut, which loses a little variance.
        assert!((0.98..=1.0).contains(&var), "{var}");
        // The median factor is 1 and the quartiles sit at z = ±0.6745.
        assert!((noise_multiplier(0.5) - 1.0).abs() < 1e-3);
        let q3 = noise_multiplier(0.75).ln() / 0.35;
        assert!((q3 - 0.674_49).abs() < 1e-3, "{q3}");
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
