//! The churn simulator: one provider and many gateways in process, over many rounds with random
//! joins, exits and connection losses, every released sum checked against the true readings.
//!
//! Everything is drawn from one `u64` seed, so a run is reproducible. Messages go through a
//! queue between the state machines exactly as they would over a network; a tampering relay
//! can flip one bit of relayed key shares to show that gateways catch it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};

use super::audit::AuditEvent;
use super::gateway::{GatewayConfig, GatewayError, GatewayState, Refused, Transition};
use super::kex::{IdentityKey, IdentityRegistry};
use super::messages::{Envelope, ToGateway, ToProvider};
use super::provider::{MemberStatus, Provider, ProviderConfig, ProviderError, RoundStatus};
use crate::superpose::add_lanes;

/// Upper bound on messages handled between two checkpoints; an honest run needs a few per
/// exchange, so reaching it means the protocol is stuck.
const MAX_MESSAGES_PER_STEP: usize = 1_000_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnConfig {
    /// DC nets, ids 1..=nets.
    pub nets: u32,
    /// Clients registered in each net before round 1.
    pub clients: u32,
    /// Rounds to run, numbered 1..=rounds.
    pub rounds: u32,
    /// Per net and round: probability that a new gateway registers.
    pub join: f64,
    /// Per active client and round: probability that it leaves.
    pub exit: f64,
    /// Per expected client and round: probability that its frame is lost (connection loss).
    pub loss: f64,
    /// Per lost client and round: probability that it comes back and re-registers.
    pub reconnect: f64,
    /// Per relayed key share: probability that the relay flips one bit of it.
    pub tamper: f64,
    pub seed: u64,
    pub provider: ProviderConfig,
    pub gateway: GatewayConfig,
}

/// Why a churn configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChurnError {
    /// A parameter is out of range.
    #[error("{0}")]
    Config(String),
    /// A gateway refused a message the honest protocol sent it.
    #[error("round {round}: {source}")]
    Gateway { round: u32, source: GatewayError },
    /// The provider refused a message an honest gateway sent it.
    #[error("round {round}: {source}")]
    Provider { round: u32, source: ProviderError },
    /// A released sum differs from the sum of the present clients' readings.
    #[error(
        "net {net} round {round}: released sum {released:?} differs from the true sum {truth:?}"
    )]
    SumMismatch {
        net: u32,
        round: u32,
        released: Vec<u64>,
        truth: Vec<u64>,
    },
    /// A sum was released although, by the gateways' own view, a guard forbade it.
    #[error(
        "net {net} round {round}: sum released though client {client} had {live} present neighbours"
    )]
    GuardViolated {
        net: u32,
        round: u32,
        client: u32,
        live: usize,
    },
    /// The message exchange did not settle.
    #[error("net {net}: the protocol did not settle after {MAX_MESSAGES_PER_STEP} messages")]
    Stuck { net: u32 },
}

impl ChurnConfig {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), ChurnError> {
        let probabilities = [
            ("join", self.join),
            ("exit", self.exit),
            ("loss", self.loss),
            ("reconnect", self.reconnect),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(ChurnError::Config(format!(
                    "--{name} {p} is not a probability in 0..=1"
                )));
            }
        }
        if !(0.0..=0.9).contains(&self.tamper) {
            return Err(ChurnError::Config(format!(
                "--tamper {} must be in 0..=0.9 (every refused exchange is retried)",
                self.tamper
            )));
        }
        if self.nets == 0 || self.rounds == 0 {
            return Err(ChurnError::Config(
                "--nets and --rounds must be at least 1".into(),
            ));
        }
        if self.provider.k < crate::graph::MIN_DEGREE {
            return Err(ChurnError::Config(format!(
                "-k {} is below the minimum of {} neighbours",
                self.provider.k,
                crate::graph::MIN_DEGREE
            )));
        }
        if self.provider.lanes == 0 || self.provider.lanes > crate::MAX_LANES {
            return Err(ChurnError::Config(format!(
                "--lanes {} is not in 1..={}",
                self.provider.lanes,
                crate::MAX_LANES
            )));
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnReport {
    pub rounds_released: u64,
    pub rounds_withheld: u64,
    pub rounds_unrecoverable: u64,
    pub joins: u64,
    pub exits: u64,
    pub losses: u64,
    pub reconnects: u64,
    /// Notification-4 messages sent to neighbours of missing clients.
    pub corrections: u64,
    /// Resends refused by a gateway's live-neighbour guard.
    pub resends_refused: u64,
    /// Smallest degree of any membership graph with more than `k` members, after every
    /// lifecycle step (`None` if no net ever had more than `k` members).
    pub min_degree_seen: Option<usize>,
    /// Lifecycle steps after which some net's membership graph was not connected.
    pub graph_splits: u64,
    /// Key exchanges a gateway refused because a relayed share failed verification.
    pub kex_refused: u64,
    /// Relayed shares the relay altered.
    pub shares_tampered: u64,
    /// Released sums checked against the readings (all matched, or the run failed).
    pub sums_checked: u64,
    /// Gateways that held back a frame that no live neighbour could mask.
    pub unmasked_refused: u64,
    /// Clients in each net at the end, ascending by net.
    pub final_clients: Vec<(u32, usize)>,
}

struct Slot {
    state: Option<GatewayState>,
    online: bool,
}

struct World<'a> {
    config: ChurnConfig,
    registry: IdentityRegistry,
    provider: Provider,
    gateways: BTreeMap<u32, Slot>,
    next_client: u32,
    round: u32,
    provider_rng: ChaCha8Rng,
    gateway_rng: ChaCha20Rng,
    world_rng: ChaCha8Rng,
    report: ChurnReport,
    on_audit: &'a mut dyn FnMut(AuditEvent),
}

/// Runs the simulation. `on_audit` receives every provider action in order, `on_round` the
/// number of each finished round.
pub fn run(
    config: &ChurnConfig,
    on_audit: &mut dyn FnMut(AuditEvent),
    on_round: &mut dyn FnMut(u32),
) -> Result<ChurnReport, ChurnError> {
    config.validate()?;
    let net_ids: Vec<u32> = (1..=config.nets).collect();
    let mut root = ChaCha8Rng::seed_from_u64(config.seed);
    let mut world = World {
        config: config.clone(),
        registry: IdentityRegistry::new(),
        provider: Provider::new(config.provider, IdentityRegistry::new(), &net_ids),
        gateways: BTreeMap::new(),
        next_client: 1,
        round: 0,
        provider_rng: ChaCha8Rng::seed_from_u64(root.r#gen()),
        gateway_rng: ChaCha20Rng::seed_from_u64(root.r#gen()),
        world_rng: ChaCha8Rng::seed_from_u64(root.r#gen()),
        report: ChurnReport::default(),
        on_audit,
    };
    for _ in 0..u64::from(config.nets) * u64::from(config.clients) {
        world.join()?;
    }
    world.report.joins = 0;
    for round in 1..=config.rounds {
        world.round = round;
        for &net in &net_ids {
            world.lifecycle(net)?;
        }
        for &net in &net_ids {
            world.run_round(net)?;
        }
        on_round(round);
    }
    world.report.final_clients = net_ids
        .iter()
        .map(|&net| {
            let members = world
                .provider
                .membership_graph(net)
                .map_or(0, |graph| graph.len());
            (net, members)
        })
        .collect();
    Ok(world.report)
}

impl World<'_> {
    fn gateway_error(&self, source: GatewayError) -> ChurnError {
        ChurnError::Gateway {
            round: self.round,
            source,
        }
    }

    fn provider_error(&self, source: ProviderError) -> ChurnError {
        ChurnError::Provider {
            round: self.round,
            source,
        }
    }

    fn flush_audit(&mut self) {
        for event in self.provider.take_audit() {
            if let AuditEvent::CorrectionRequested { neighbours, .. } = &event {
                self.report.corrections += neighbours.len() as u64;
            }
            (self.on_audit)(event);
        }
    }

    /// Applies a local event (or message) to a gateway, keeping its slot filled.
    fn drive(
        &mut self,
        client: u32,
        f: impl FnOnce(GatewayState, &IdentityRegistry, &mut ChaCha20Rng) -> Transition,
    ) -> Result<Vec<ToProvider>, GatewayError> {
        let Some(slot) = self.gateways.get_mut(&client) else {
            return Ok(Vec::new());
        };
        let Some(state) = slot.state.take() else {
            return Ok(Vec::new());
        };
        match f(state, &self.registry, &mut self.gateway_rng) {
            Ok(step) => {
                slot.state = Some(step.state);
                Ok(step.out)
            }
            Err(refused) => {
                let Refused { state, error } = *refused;
                slot.state = Some(state);
                Err(error)
            }
        }
    }

    /// Sends gateway messages to the provider and delivers everything that follows until no
    /// message is left.
    fn pump(&mut self, net: u32, first: Vec<ToProvider>) -> Result<(), ChurnError> {
        let mut to_provider: VecDeque<ToProvider> = first.into();
        let mut to_gateways: VecDeque<Envelope> = VecDeque::new();
        let mut handled = 0usize;
        loop {
            handled += 1;
            if handled > MAX_MESSAGES_PER_STEP {
                return Err(ChurnError::Stuck { net });
            }
            if let Some(message) = to_provider.pop_front() {
                let result = self.provider.handle(message, &mut self.provider_rng);
                self.flush_audit();
                to_gateways.extend(result.map_err(|e| self.provider_error(e))?);
            } else if let Some(Envelope { to, mut message }) = to_gateways.pop_front() {
                if let ToGateway::KeyShare(share) = &mut message
                    && self.world_rng.gen_bool(self.config.tamper)
                {
                    let bit = self.world_rng.gen_range(0..(32 + 64) * 8);
                    if bit < 256 {
                        share.ephemeral[bit / 8] ^= 1 << (bit % 8);
                    } else {
                        share.signature[(bit - 256) / 8] ^= 1 << (bit % 8);
                    }
                    self.report.shares_tampered += 1;
                }
                let answers = self
                    .drive(to, |state, registry, rng| {
                        state.receive(&message, registry, rng)
                    })
                    .map_err(|refused| self.gateway_error(refused))?;
                for answer in &answers {
                    match answer {
                        ToProvider::ResendRefused { .. } => self.report.resends_refused += 1,
                        ToProvider::KexRefused { .. } => self.report.kex_refused += 1,
                        _ => {}
                    }
                }
                to_provider.extend(answers);
            } else {
                return Ok(());
            }
        }
    }

    fn settle(&mut self, net: u32, first: Vec<ToProvider>) -> Result<(), ChurnError> {
        self.pump(net, first)?;
        if !self.provider.is_idle(net) {
            return Err(ChurnError::Stuck { net });
        }
        self.check_graph(net);
        Ok(())
    }

    fn check_graph(&mut self, net: u32) {
        let Some(graph) = self.provider.membership_graph(net) else {
            return;
        };
        if !graph.is_connected() {
            self.report.graph_splits += 1;
        }
        if graph.len() > self.config.provider.k {
            let degree = graph.min_degree();
            self.report.min_degree_seen = Some(
                self.report
                    .min_degree_seen
                    .map_or(degree, |d| d.min(degree)),
            );
        }
    }

    /// A newly commissioned gateway registers; the provider places it.
    fn join(&mut self) -> Result<(), ChurnError> {
        let client = self.next_client;
        self.next_client += 1;
        let identity = IdentityKey::generate(&mut self.gateway_rng);
        self.registry.insert(client, identity.public());
        self.provider.commission(client, identity.public());
        self.gateways.insert(
            client,
            Slot {
                state: Some(GatewayState::new(client, identity, self.config.gateway)),
                online: true,
            },
        );
        let first = self
            .drive(client, |state, _, _| state.register())
            .map_err(|refused| self.gateway_error(refused))?;
        self.report.joins += 1;
        let net = self.placed_net(client)?;
        self.settle(net, first)
    }

    fn placed_net(&self, client: u32) -> Result<u32, ChurnError> {
        // A registration that was refused leaves the client without a home; report that.
        self.provider
            .home_of(client)
            .or_else(|| self.provider.net_ids().first().copied())
            .ok_or_else(|| ChurnError::Config("no net to join".into()))
    }

    /// Joins, exits and reconnections of one net before a round.
    fn lifecycle(&mut self, net: u32) -> Result<(), ChurnError> {
        let lost: Vec<u32> = self
            .provider
            .members(net, MemberStatus::Out)
            .into_iter()
            .filter(|c| self.gateways.get(c).is_some_and(|s| !s.online))
            .collect();
        for client in lost {
            if self.world_rng.gen_bool(self.config.reconnect) {
                if let Some(slot) = self.gateways.get_mut(&client) {
                    slot.online = true;
                }
                let first = self
                    .drive(client, |state, _, _| state.reconnect())
                    .map_err(|refused| self.gateway_error(refused))?;
                self.report.reconnects += 1;
                self.settle(net, first)?;
            }
        }
        for client in self.provider.members(net, MemberStatus::Active) {
            if self.world_rng.gen_bool(self.config.exit) {
                let first = self
                    .drive(client, |state, _, _| state.leave())
                    .map_err(|refused| self.gateway_error(refused))?;
                self.gateways.remove(&client);
                self.report.exits += 1;
                self.settle(net, first)?;
            }
        }
        if self.world_rng.gen_bool(self.config.join) {
            self.join()?;
        }
        Ok(())
    }

    fn run_round(&mut self, net: u32) -> Result<(), ChurnError> {
        let round = self.round;
        let expected = self
            .provider
            .open_round(net, round)
            .map_err(|e| self.provider_error(e))?;
        let lanes = self.config.provider.lanes;
        let mut readings: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut transmits = Vec::new();
        for client in expected {
            if self.world_rng.gen_bool(self.config.loss) {
                if let Some(slot) = self.gateways.get_mut(&client) {
                    slot.online = false;
                }
                self.report.losses += 1;
                continue;
            }
            let reading: Vec<u64> = (0..lanes)
                .map(|_| self.world_rng.gen_range(0..10_000))
                .collect();
            match self.drive(client, |state, _, _| state.transmit(round, &reading)) {
                Ok(out) => {
                    readings.insert(client, reading);
                    transmits.extend(out);
                }
                Err(GatewayError::Unmasked { .. }) => {
                    // The gateway will be declared missing; it re-registers like a lost one.
                    if let Some(slot) = self.gateways.get_mut(&client) {
                        slot.online = false;
                    }
                    self.report.unmasked_refused += 1;
                }
                Err(error) => return Err(self.gateway_error(error)),
            }
        }
        for message in transmits {
            let result = self.provider.handle(message, &mut self.provider_rng);
            self.flush_audit();
            result.map_err(|e| self.provider_error(e))?;
        }
        let corrections: Vec<ToProvider> = Vec::new();
        let outbox = self
            .provider
            .close_round(net)
            .map_err(|e| self.provider_error(e))?;
        self.flush_audit();
        self.deliver_then_pump(net, outbox, corrections)?;
        for outcome in self.provider.take_outcomes() {
            match outcome.status {
                RoundStatus::Released(sum) => {
                    self.check_release(net, round, &outcome.present, &readings, sum)?;
                    self.report.rounds_released += 1;
                }
                RoundStatus::Withheld(_) => self.report.rounds_withheld += 1,
                RoundStatus::Unrecoverable { .. } => self.report.rounds_unrecoverable += 1,
            }
        }
        Ok(())
    }

    fn deliver_then_pump(
        &mut self,
        net: u32,
        outbox: Vec<Envelope>,
        mut answers: Vec<ToProvider>,
    ) -> Result<(), ChurnError> {
        for Envelope { to, message } in outbox {
            let out = self
                .drive(to, |state, registry, rng| {
                    state.receive(&message, registry, rng)
                })
                .map_err(|refused| self.gateway_error(refused))?;
            for answer in &out {
                if matches!(answer, ToProvider::ResendRefused { .. }) {
                    self.report.resends_refused += 1;
                }
            }
            answers.extend(out);
        }
        self.settle(net, answers)
    }

    /// Checks a released sum against the readings and, independently of the provider, that
    /// the guards allowed it: enough present clients, each with enough present neighbours as
    /// the gateways themselves hold seeds.
    fn check_release(
        &mut self,
        net: u32,
        round: u32,
        present: &[u32],
        readings: &BTreeMap<u32, Vec<u64>>,
        released: Vec<u64>,
    ) -> Result<(), ChurnError> {
        let mut truth = vec![0u64; self.config.provider.lanes];
        for client in present {
            if let Some(reading) = readings.get(client) {
                add_lanes(&mut truth, reading);
            }
        }
        let present_set: BTreeSet<u32> = present.iter().copied().collect();
        if truth != released || present.iter().any(|c| !readings.contains_key(c)) {
            return Err(ChurnError::SumMismatch {
                net,
                round,
                released,
                truth,
            });
        }
        for &client in present {
            let live = self
                .gateways
                .get(&client)
                .and_then(|slot| slot.state.as_ref())
                .map_or(0, |state| {
                    state
                        .live_neighbours()
                        .iter()
                        .filter(|n| present_set.contains(n))
                        .count()
                });
            if live < self.config.provider.min_live_neighbours
                || present.len() < self.config.provider.min_clients
            {
                return Err(ChurnError::GuardViolated {
                    net,
                    round,
                    client,
                    live,
                });
            }
        }
        self.report.sums_checked += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(seed: u64) -> ChurnConfig {
        ChurnConfig {
            nets: 2,
            clients: 12,
            rounds: 30,
            join: 0.3,
            exit: 0.02,
            loss: 0.02,
            reconnect: 0.5,
            tamper: 0.0,
            seed,
            provider: ProviderConfig {
                k: 3,
                min_clients: 4,
                min_live_neighbours: 2,
                lanes: 2,
            },
            gateway: GatewayConfig::default(),
        }
    }

    #[test]
    fn a_quiet_net_releases_every_round() {
        let mut c = config(1);
        (c.join, c.exit, c.loss) = (0.0, 0.0, 0.0);
        let report = run(&c, &mut |_| {}, &mut |_| {}).unwrap();
        assert_eq!(report.rounds_released, 60);
        assert_eq!(report.sums_checked, 60);
        assert_eq!(report.min_degree_seen, Some(3));
        assert_eq!(report.graph_splits, 0);
        assert_eq!(report.final_clients, vec![(1, 12), (2, 12)]);
    }

    #[test]
    fn tampered_shares_are_refused_and_retried() {
        let mut c = config(2);
        c.tamper = 0.3;
        let report = run(&c, &mut |_| {}, &mut |_| {}).unwrap();
        assert!(report.shares_tampered > 0);
        // Every altered share is caught: each one ends its exchange with a refusal.
        assert_eq!(report.kex_refused, report.shares_tampered);
        assert_eq!(report.graph_splits, 0);
    }

    #[test]
    fn runs_are_reproducible_from_the_seed() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ra = run(&config(3), &mut |e| a.push(e.to_string()), &mut |_| {}).unwrap();
        let rb = run(&config(3), &mut |e| b.push(e.to_string()), &mut |_| {}).unwrap();
        assert_eq!(ra, rb);
        assert_eq!(a, b);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut c = config(4);
        c.loss = 1.5;
        assert!(matches!(
            run(&c, &mut |_| {}, &mut |_| {}),
            Err(ChurnError::Config(_))
        ));
        let mut c = config(4);
        c.provider.k = 2;
        assert!(matches!(
            run(&c, &mut |_| {}, &mut |_| {}),
            Err(ChurnError::Config(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random churn sequences: the run itself fails on any wrong sum or guard violation;
        /// on top, the graph never splits and degrees stay at least k once nets are large.
        #[test]
        fn random_churn_keeps_the_invariants(
            seed in any::<u64>(),
            join in 0.0f64..0.6,
            exit in 0.0f64..0.08,
            loss in 0.0f64..0.08,
            tamper in 0.0f64..0.3,
        ) {
            let mut c = config(seed);
            c.rounds = 15;
            (c.join, c.exit, c.loss, c.tamper) = (join, exit, loss, tamper);
            let report = run(&c, &mut |_| {}, &mut |_| {}).unwrap();
            prop_assert_eq!(report.graph_splits, 0);
            if let Some(degree) = report.min_degree_seen {
                prop_assert!(degree >= c.provider.k, "min degree {}", degree);
            }
            prop_assert_eq!(report.sums_checked, report.rounds_released);
            prop_assert_eq!(
                report.rounds_released + report.rounds_withheld + report.rounds_unrecoverable,
                u64::from(c.rounds * c.nets)
            );
        }
    }
}
