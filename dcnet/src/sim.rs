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

use engine::loadprofile::{Civil, H25, QUARTER_SECONDS};
use engine::superpose::apply_edge_key;
use engine::{EdgeSeed, EdgeSeedDeriver, GraphError, KeyGraph, MAX_LANES, master_key};
use ingest::{Frame, Notification, RoundResult, RoundStatus};
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
    /// Edge seeds, in `graph.edges()` order.
    seeds: Vec<(u32, u32, EdgeSeed)>,
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

fn unit(parts: &[u64]) -> f64 {
    let h = parts.iter().fold(0x5EED_u64, |acc, &p| mix64(acc ^ p));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

const SALT_DROPOUT: u64 = 1;
const SALT_NOISE_A: u64 = 2;
const SALT_NOISE_B: u64 = 3;
const SALT_SPIKE: u64 = 4;
const SALT_SPIKE_SIZE: u64 = 5;
const SALT_CLOUD: u64 = 6;
const SALT_TIMESTAMP: u64 = 7;

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
            .map(|(a, b)| (a, b, deriver.derive(dc_net_id, a, b)))
            .collect();
        Ok(Self {
            dc_net_id,
            graph,
            households,
            seeds,
        })
    }

    /// Edge seeds as `(lower id, higher id, seed)`.
    pub fn seeds(&self) -> &[(u32, u32, EdgeSeed)] {
        &self.seeds
    }
}

/// The reading of `household` in `round`, lane by lane (see [`LANE_MEANINGS`]).
pub fn reading(config: &SimConfig, net: u32, household: &Household, round: u32, out: &mut [u64]) {
    let start = u64::from(round) * QUARTER_SECONDS;
    let civil = Civil::from_unix_seconds(start);
    let key = [
        config.seed,
        u64::from(net),
        u64::from(household.client_id),
        u64::from(round),
    ];
    let with = |salt: u64| unit(&[key[0], key[1], key[2], key[3], salt]);
    // Multiplicative log-normal noise (sigma 0.35) and occasional appliance spikes.
    let gauss = (-2.0 * (1.0 - with(SALT_NOISE_A)).ln()).sqrt()
        * (2.0 * std::f64::consts::PI * with(SALT_NOISE_B)).cos();
    let mut load = H25::get().wh(
        civil.month,
        civil.day_type(),
        civil.quarter,
        household.annual_kwh,
    ) * (0.35 * gauss).exp();
    if with(SALT_SPIKE) < 0.03 {
        load += 100.0 + 500.0 * with(SALT_SPIKE_SIZE);
    }
    let day = start / 86_400;
    let cloud = 0.2 + 0.8 * unit(&[config.seed, u64::from(net), day, SALT_CLOUD]);
    let pv = pv_wh(household.pv_kwp, civil.month, civil.quarter, cloud);
    let import = (load - pv).max(0.0).round() as u64;
    let export = (pv - load).max(0.0).round() as u64;
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

/// PV energy in one quarter hour: a sine over the daylight hours of the month, scaled by the
/// season's peak irradiance and the day's cloud factor.
fn pv_wh(kwp: f64, month: u32, quarter: usize, cloud: f64) -> f64 {
    if kwp == 0.0 {
        return 0.0;
    }
    let season = (2.0 * std::f64::consts::PI * (f64::from(month) - 0.5) / 12.0).cos();
    let daylight_hours = 12.0 - 4.3 * season;
    let peak = 0.55 - 0.4 * season;
    let hour = quarter as f64 / 4.0 + 0.125;
    let sunrise = 11.5 - daylight_hours / 2.0;
    let phase = (hour - sunrise) / daylight_hours;
    if !(0.0..=1.0).contains(&phase) {
        return 0.0;
    }
    // kWp · 1000 W · irradiance share · 0.25 h · 0.8 performance ratio.
    kwp * 1000.0 * peak * (std::f64::consts::PI * phase).sin().powf(1.3) * cloud * 0.25 * 0.8
}

/// Whether client `client` of net `net` misses `round`.
pub fn is_dropout(config: &SimConfig, net: u32, client: u32, round: u32) -> bool {
    config.dropout > 0.0
        && unit(&[
            config.seed,
            u64::from(net),
            u64::from(client),
            u64::from(round),
            SALT_DROPOUT,
        ]) < config.dropout
}

/// Receives what a simulated round produces.
pub trait SimSink {
    /// A frame for the round log.
    fn frame(&mut self, frame: &Frame);
    /// A present client's plaintext reading (for `readings.csv`).
    fn reading(&mut self, net: u32, client: u32, round: u32, lanes: &[u64]);
    /// The expected `global.csv` row of the round.
    fn truth(&mut self, row: RoundResult);
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

/// Simulates every round of one net into `sink`.
pub fn run_net(config: &SimConfig, plan: &NetPlan, sink: &mut impl SimSink) -> NetStats {
    let lanes = usize::from(config.lanes);
    let n = plan.households.len();
    let net = plan.dc_net_id;
    let mut stats = NetStats::default();
    let mut readings = vec![0u64; n * lanes];
    let mut masked = vec![0u64; n * lanes];
    let mut corrected = vec![0u64; n * lanes];
    let mut key = [0u64; MAX_LANES];
    let key = &mut key[..lanes];
    let index = |client: u32| plan.graph.index_of(client).unwrap_or(0);
    for round in config.first_round..config.first_round.saturating_add(config.rounds) {
        let missing: Vec<bool> = plan
            .households
            .iter()
            .map(|h| is_dropout(config, net, h.client_id, round))
            .collect();
        for (i, household) in plan.households.iter().enumerate() {
            reading(
                config,
                net,
                household,
                round,
                &mut readings[i * lanes..(i + 1) * lanes],
            );
        }
        masked.copy_from_slice(&readings);
        corrected.copy_from_slice(&readings);
        let mut needs_resend = vec![false; n];
        for (a, b, seed) in &plan.seeds {
            engine::keystream::fill_lanes(seed, round, key);
            let (ia, ib) = (index(*a), index(*b));
            for (me, other, i) in [(*a, *b, ia), (*b, *a, ib)] {
                // The self-edge error cannot occur: graph edges join distinct clients.
                let _ = apply_edge_key(me, other, key, &mut masked[i * lanes..(i + 1) * lanes]);
            }
            match (missing[ia], missing[ib]) {
                (false, false) => {
                    for (me, other, i) in [(*a, *b, ia), (*b, *a, ib)] {
                        let _ = apply_edge_key(
                            me,
                            other,
                            key,
                            &mut corrected[i * lanes..(i + 1) * lanes],
                        );
                    }
                }
                (false, true) => needs_resend[ia] = true,
                (true, false) => needs_resend[ib] = true,
                (true, true) => {}
            }
        }
        let round_start = round_start_ms(round);
        let timestamp = |client: u32, base_s: u64, spread_s: u64| {
            let u = unit(&[
                config.seed,
                u64::from(net),
                u64::from(client),
                u64::from(round),
                SALT_TIMESTAMP,
            ]);
            round_start + base_s * 1000 + (u * (spread_s * 1000) as f64) as u64
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
            let reading = &readings[i * lanes..(i + 1) * lanes];
            engine::add_lanes(&mut sum, reading);
            sink.reading(net, client, round, reading);
            sink.frame(&Frame {
                notification: Notification::Transmit,
                transmission: true,
                dc_net_id: net,
                client_id: client,
                round,
                timestamp_ms: timestamp(client, 1, 120),
                lanes: masked[i * lanes..(i + 1) * lanes].to_vec(),
            });
            stats.transmits += 1;
        }
        let mut resent = 0;
        for (i, household) in plan.households.iter().enumerate() {
            if missing[i] || !needs_resend[i] {
                continue;
            }
            sink.frame(&Frame {
                notification: Notification::Resend,
                transmission: true,
                dc_net_id: net,
                client_id: household.client_id,
                round,
                timestamp_ms: timestamp(household.client_id, 300, 300),
                lanes: corrected[i * lanes..(i + 1) * lanes].to_vec(),
            });
            resent += 1;
            stats.resends += 1;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect {
        frames: Vec<Frame>,
        truth: Vec<RoundResult>,
        readings: u64,
    }

    impl SimSink for Collect {
        fn frame(&mut self, frame: &Frame) {
            self.frames.push(frame.clone());
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
