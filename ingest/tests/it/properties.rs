//! Property tests: for random key graphs, lane counts, readings and missing sets, frames built
//! with the engine's superpositions aggregate to the sum of the present clients' readings.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    EdgeSeed, KeyGraph, edge_seed, local_superposition, master_key, resend_superposition,
};
use ingest::reject::FrameSource;
use ingest::{AggregateOptions, Aggregator, Frame, FrameView, Notification, RoundStatus};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
struct Scenario {
    graph: KeyGraph,
    lanes: usize,
    round: u32,
    readings: BTreeMap<u32, Vec<u64>>,
    missing: BTreeSet<u32>,
    seeds: BTreeMap<(u32, u32), EdgeSeed>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        4usize..40,
        3usize..6,
        1usize..=4,
        any::<u32>(),
        0.0f64..0.5,
    )
        .prop_flat_map(|(seed, n, k, lanes, round, dropout)| {
            let n = n.max(k + 1);
            (
                Just((seed, n, k, lanes, round)),
                proptest::collection::vec(proptest::collection::vec(any::<u64>(), lanes), n),
                proptest::collection::vec(proptest::bool::weighted(dropout), n),
            )
        })
        .prop_map(|((seed, n, k, lanes, round), values, drop)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let clients: Vec<u32> = (0..n as u32).map(|i| 1000 + i * 3).collect();
            let graph = KeyGraph::random(5, &clients, k, &mut rng).unwrap();
            let master = master_key(seed);
            let seeds = graph
                .edges()
                .map(|(a, b)| ((a, b), edge_seed(&master, 5, a, b)))
                .collect();
            let readings = clients.iter().copied().zip(values).collect();
            let mut missing: BTreeSet<u32> = clients
                .iter()
                .zip(drop)
                .filter(|(_, d)| *d)
                .map(|(c, _)| *c)
                .collect();
            // Keep at least one client present so the round exists.
            if missing.len() == clients.len() {
                missing.remove(&clients[0]);
            }
            Scenario {
                graph,
                lanes,
                round,
                readings,
                missing,
                seeds,
            }
        })
}

impl Scenario {
    fn neighbours(&self, me: u32) -> Vec<(u32, &EdgeSeed)> {
        self.graph
            .neighbours(me)
            .unwrap()
            .iter()
            .map(|&other| (other, &self.seeds[&(me.min(other), me.max(other))]))
            .collect()
    }

    fn frame(&self, notification: Notification, client: u32, lanes: Vec<u64>) -> Vec<u8> {
        Frame {
            notification,
            transmission: true,
            dc_net_id: 5,
            client_id: client,
            round: self.round,
            timestamp_ms: 1,
            lanes,
        }
        .to_bytes()
        .unwrap()
    }

    /// Transmit frames of the present clients, and resend frames of those with a missing
    /// neighbour, except for the client `skip_resend` (if any).
    fn frames(&self, skip_resend: Option<u32>) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for (&client, reading) in &self.readings {
            if self.missing.contains(&client) {
                continue;
            }
            let mut out = vec![0; self.lanes];
            local_superposition(
                client,
                self.round,
                reading,
                self.neighbours(client),
                &mut out,
            )
            .unwrap();
            frames.push(self.frame(Notification::Transmit, client, out));
            let has_missing = self
                .graph
                .neighbours(client)
                .unwrap()
                .iter()
                .any(|n| self.missing.contains(n));
            if has_missing && skip_resend != Some(client) {
                let mut out = vec![0; self.lanes];
                resend_superposition(
                    client,
                    self.round,
                    reading,
                    self.neighbours(client),
                    |n| self.missing.contains(&n),
                    &mut out,
                )
                .unwrap();
                frames.push(self.frame(Notification::Resend, client, out));
            }
        }
        frames
    }

    fn present_sum(&self) -> Vec<u64> {
        let mut sum = vec![0u64; self.lanes];
        for (client, reading) in &self.readings {
            if !self.missing.contains(client) {
                for (s, r) in sum.iter_mut().zip(reading) {
                    *s = s.wrapping_add(*r);
                }
            }
        }
        sum
    }

    fn aggregate(&self, frames: &[Vec<u8>], options: AggregateOptions) -> ingest::AggregateReport {
        let nets = BTreeMap::from([(5, self.graph.clone())]);
        let mut agg = Aggregator::new(&nets, self.lanes, options);
        for (i, bytes) in frames.iter().enumerate() {
            let view = FrameView::parse(bytes, self.lanes as u8).unwrap();
            agg.add_frame(
                &view,
                FrameSource {
                    file: 0,
                    offset: i as u64,
                },
            );
        }
        agg.finish()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn transmits_and_resends_sum_to_the_present_readings(s in scenario()) {
        let report = s.aggregate(&s.frames(None), AggregateOptions::default());
        let row = &report.rounds[0];
        let present = s.readings.len() - s.missing.len();
        prop_assert_eq!(row.present, present);
        if present >= 2 {
            prop_assert_eq!(row.status, RoundStatus::Ok);
            prop_assert_eq!(row.sum.clone(), Some(s.present_sum()));
        } else {
            prop_assert_eq!(row.status, RoundStatus::Withheld);
        }
        prop_assert_eq!(report.counts.total(), 0);
    }

    #[test]
    fn dropping_a_needed_resend_is_unrecoverable(s in scenario(), pick: prop::sample::Index) {
        let needy: Vec<u32> = s.readings.keys().copied()
            .filter(|c| !s.missing.contains(c))
            .filter(|c| s.graph.neighbours(*c).unwrap().iter().any(|n| s.missing.contains(n)))
            .collect();
        prop_assume!(!needy.is_empty() && s.readings.len() - s.missing.len() >= 2);
        let skip = needy[pick.index(needy.len())];
        let report = s.aggregate(&s.frames(Some(skip)), AggregateOptions::default());
        prop_assert_eq!(report.rounds[0].status, RoundStatus::Unrecoverable);
        prop_assert_eq!(report.rounds[0].sum.clone(), None);
    }

    #[test]
    fn fewer_present_than_the_minimum_is_withheld(s in scenario()) {
        let present = s.readings.len() - s.missing.len();
        let options = AggregateOptions { min_participants: present + 1, ..Default::default() };
        let report = s.aggregate(&s.frames(None), options);
        prop_assert_eq!(report.rounds[0].status, RoundStatus::Withheld);
        prop_assert_eq!(report.rounds[0].sum.clone(), None);
    }
}
