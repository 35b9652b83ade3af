//! Lifecycle tests that need both state machines: every notification in every state, exits,
//! connection loss and the privacy guards.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};

use super::*;
use crate::superpose::{add_lanes, local_superposition};

const NET: u32 = 7;

/// A provider with gateways and a message pump; panics on any refusal (tests only).
struct Kit {
    provider: Provider,
    gateways: BTreeMap<u32, GatewayState>,
    registry: IdentityRegistry,
    secrets: BTreeMap<u32, [u8; 32]>,
    rng: ChaCha20Rng,
    provider_rng: ChaCha8Rng,
}

impl Kit {
    /// Net 7 with clients 1..=n registered one by one.
    fn new(n: u32, config: ProviderConfig) -> Self {
        let mut kit = Self {
            provider: Provider::new(config, IdentityRegistry::new(), &[NET]),
            gateways: BTreeMap::new(),
            registry: IdentityRegistry::new(),
            secrets: BTreeMap::new(),
            rng: ChaCha20Rng::seed_from_u64(9),
            provider_rng: ChaCha8Rng::seed_from_u64(10),
        };
        for client in 1..=n {
            kit.commission(client);
            let out = kit.local(client, |s| s.register());
            kit.send(out);
        }
        kit
    }

    fn commission(&mut self, client: u32) {
        let secret = [client as u8; 32];
        let identity = IdentityKey::from_secret_bytes(&secret);
        self.registry.insert(client, identity.public());
        self.provider.commission(client, identity.public());
        self.secrets.insert(client, secret);
        self.gateways.insert(
            client,
            GatewayState::new(client, identity, GatewayConfig::default()),
        );
    }

    fn identity(&self, client: u32) -> IdentityKey {
        IdentityKey::from_secret_bytes(&self.secrets[&client])
    }

    /// Applies a transition to a gateway; returns its messages, or the refusal.
    fn try_local(
        &mut self,
        client: u32,
        f: impl FnOnce(GatewayState) -> gateway::Transition,
    ) -> Result<Vec<ToProvider>, GatewayError> {
        let state = self.gateways.remove(&client).expect("known gateway");
        match f(state) {
            Ok(step) => {
                self.gateways.insert(client, step.state);
                Ok(step.out)
            }
            Err(refused) => {
                self.gateways.insert(client, refused.state);
                Err(refused.error)
            }
        }
    }

    fn local(
        &mut self,
        client: u32,
        f: impl FnOnce(GatewayState) -> gateway::Transition,
    ) -> Vec<ToProvider> {
        self.try_local(client, f).expect("gateway accepts")
    }

    fn try_receive(
        &mut self,
        to: u32,
        message: &ToGateway,
    ) -> Result<Vec<ToProvider>, GatewayError> {
        let state = self.gateways.remove(&to).expect("known gateway");
        match state.receive(message, &self.registry, &mut self.rng) {
            Ok(step) => {
                self.gateways.insert(to, step.state);
                Ok(step.out)
            }
            Err(refused) => {
                self.gateways.insert(to, refused.state);
                Err(refused.error)
            }
        }
    }

    /// Delivers everything until no message is left.
    fn send(&mut self, first: Vec<ToProvider>) {
        let mut to_provider = first;
        while !to_provider.is_empty() {
            let mut next = Vec::new();
            for message in to_provider {
                let outbox = self
                    .provider
                    .handle(message, &mut self.provider_rng)
                    .expect("provider accepts");
                self.deliver_into(outbox, &mut next);
            }
            to_provider = next;
        }
    }

    fn deliver_into(&mut self, outbox: Vec<Envelope>, answers: &mut Vec<ToProvider>) {
        for Envelope { to, message } in outbox {
            answers.extend(self.try_receive(to, &message).expect("gateway accepts"));
        }
    }

    fn deliver(&mut self, outbox: Vec<Envelope>) {
        let mut answers = Vec::new();
        self.deliver_into(outbox, &mut answers);
        self.send(answers);
    }

    fn state(&self, client: u32) -> &GatewayState {
        &self.gateways[&client]
    }

    fn neighbours(&self, client: u32) -> Vec<u32> {
        self.state(client).live_neighbours()
    }

    /// Runs round `round` in which `absent` send nothing; returns the outcome and readings.
    fn round(&mut self, round: u32, absent: &[u32]) -> (RoundOutcome, BTreeMap<u32, Vec<u64>>) {
        let expected = self.provider.open_round(NET, round).unwrap();
        let mut readings = BTreeMap::new();
        for client in expected {
            if absent.contains(&client) {
                continue;
            }
            let reading = vec![u64::from(client) * 1000 + u64::from(round), u64::MAX - 1];
            let out = self.local(client, |s| s.transmit(round, &reading));
            readings.insert(client, reading);
            for message in out {
                self.provider
                    .handle(message, &mut self.provider_rng)
                    .unwrap();
            }
        }
        let outbox = self.provider.close_round(NET).unwrap();
        self.deliver(outbox);
        let mut outcomes = self.provider.take_outcomes();
        assert_eq!(outcomes.len(), 1);
        (outcomes.remove(0), readings)
    }
}

fn config() -> ProviderConfig {
    ProviderConfig {
        k: 3,
        min_clients: 3,
        min_live_neighbours: 2,
        lanes: 2,
    }
}

fn sum_of(readings: &BTreeMap<u32, Vec<u64>>) -> Vec<u64> {
    let mut sum = vec![0u64; 2];
    for reading in readings.values() {
        add_lanes(&mut sum, reading);
    }
    sum
}

#[test]
fn registration_gives_k_random_neighbours_and_matching_seeds() {
    let kit = Kit::new(8, config());
    let graph = kit.provider.key_graph(NET).unwrap();
    assert!(graph.is_connected());
    assert!(graph.min_degree() >= 3);
    for (a, b) in graph.edges() {
        let (sa, sb) = (kit.state(a).seed_with(b), kit.state(b).seed_with(a));
        assert!(sa.is_some() && sa == sb, "edge {a}-{b}");
    }
    assert_eq!(kit.provider.members(NET, MemberStatus::Active).len(), 8);
    for client in 1..=8 {
        assert_eq!(kit.state(client).name(), "active");
    }
}

#[test]
fn a_full_round_releases_the_exact_sum() {
    let mut kit = Kit::new(6, config());
    let (outcome, readings) = kit.round(1, &[]);
    assert_eq!(outcome.status, RoundStatus::Released(sum_of(&readings)));
    assert_eq!(outcome.present.len(), 6);
}

#[test]
fn gateway_notifications_in_every_state() {
    // For each state: (register, transmit, exit of a real neighbour, correction) accepted?
    let cases: [(&str, [bool; 4]); 7] = [
        ("unregistered", [true, false, false, false]),
        ("registering", [false, false, false, false]),
        ("joining", [false, false, false, false]),
        ("rejoining", [false, false, true, false]),
        ("active", [false, true, true, true]),
        ("relinking", [false, false, true, false]),
        ("departed", [false, false, false, false]),
    ];
    for (state_name, expected) in cases {
        for (input, accept) in expected.into_iter().enumerate() {
            let mut kit = Kit::new(6, config());
            let me = 1;
            let neighbour = kit.neighbours(me)[0];
            // A round so that a correction for it is meaningful where rounds are allowed.
            let reading = [5u64, 6];
            kit.local(me, |s| s.transmit(1, &reading));
            let exit = match kit.local(neighbour, |s| s.leave()).pop() {
                Some(ToProvider::Exit(exit)) => exit,
                other => panic!("{other:?}"),
            };
            // Bring gateway `me` into the state under test.
            match state_name {
                "unregistered" => {
                    kit.gateways.insert(
                        me,
                        GatewayState::new(me, kit.identity(me), GatewayConfig::default()),
                    );
                }
                "registering" => {
                    kit.gateways.insert(
                        me,
                        GatewayState::new(me, kit.identity(me), GatewayConfig::default()),
                    );
                    kit.local(me, |s| s.register());
                }
                "joining" => {
                    kit.gateways.insert(
                        me,
                        GatewayState::new(me, kit.identity(me), GatewayConfig::default()),
                    );
                    kit.local(me, |s| s.register());
                    let assigned = ToGateway::Assigned {
                        dc_net_id: NET,
                        neighbours: vec![neighbour],
                    };
                    kit.try_receive(me, &assigned).unwrap();
                }
                "rejoining" => {
                    kit.local(me, |s| s.reconnect());
                }
                "active" => {}
                "relinking" => {
                    let start = ToGateway::KexStart {
                        dc_net_id: NET,
                        exchange: 999,
                        peer: 6,
                    };
                    kit.try_receive(me, &start).unwrap();
                }
                "departed" => {
                    kit.local(me, |s| s.leave());
                }
                _ => unreachable!(),
            }
            assert_eq!(kit.state(me).name(), state_name);
            let result = match input {
                0 => kit.try_local(me, |s| s.register()),
                1 => kit.try_local(me, |s| s.transmit(2, &reading)),
                2 => kit.try_receive(me, &ToGateway::Exit(exit)),
                _ => kit.try_receive(
                    me,
                    &ToGateway::Correction {
                        dc_net_id: NET,
                        round: 1,
                        missing: vec![neighbour],
                        resend: true,
                    },
                ),
            };
            assert_eq!(
                result.is_ok(),
                accept,
                "state {state_name}, input {input}: {result:?}"
            );
            if let Err(error) = result {
                // Refusals for the wrong state say so, and leave the state as it was.
                if !accept && !matches!(error, GatewayError::NotANeighbour { .. }) {
                    assert!(
                        matches!(error, GatewayError::WrongState { .. }),
                        "state {state_name}, input {input}: {error}"
                    );
                }
                assert_eq!(kit.state(me).name(), state_name);
            }
        }
    }
}

#[test]
fn exits_that_do_not_follow_a_real_exit_are_refused() {
    let mut kit = Kit::new(12, config());
    let me = 12;
    let neighbours = kit.neighbours(me);
    let stranger = (1..12).find(|c| !neighbours.contains(c)).unwrap();
    let neighbour = neighbours[0];
    // A non-neighbour's genuine exit.
    let exit = SignedExit::sign(&kit.identity(stranger), NET, stranger, vec![(me, 0)]);
    assert!(matches!(
        kit.try_receive(me, &ToGateway::Exit(exit)),
        Err(GatewayError::NotANeighbour { .. })
    ));
    // An exit the provider fabricated for a neighbour (signed with another key).
    let forged = SignedExit::sign(&kit.identity(stranger), NET, neighbour, vec![(me, 0)]);
    assert!(matches!(
        kit.try_receive(me, &ToGateway::Exit(forged)),
        Err(GatewayError::Kex {
            source: KexError::BadSignature { .. },
            ..
        })
    ));
    // A genuinely signed exit naming another exchange (a replay of an older exit).
    let stale = SignedExit::sign(
        &kit.identity(neighbour),
        NET,
        neighbour,
        vec![(me, 123_456)],
    );
    assert!(matches!(
        kit.try_receive(me, &ToGateway::Exit(stale)),
        Err(GatewayError::StaleExit { .. })
    ));
    assert_eq!(kit.neighbours(me), neighbours, "nothing was dropped");
}

#[test]
fn exit_relinks_before_the_next_round_and_keeps_the_graph_whole() {
    let mut kit = Kit::new(8, config());
    let leaver = 4;
    let partners = kit.neighbours(leaver);
    let out = kit.local(leaver, |s| s.leave());
    let outbox = kit
        .provider
        .handle(out[0].clone(), &mut kit.provider_rng)
        .unwrap();
    // Seeds are changing: no round may open until every partner confirmed.
    assert!(matches!(
        kit.provider.open_round(NET, 1),
        Err(ProviderError::Busy { .. })
    ));
    kit.deliver(outbox);
    let graph = kit.provider.key_graph(NET).unwrap();
    assert!(graph.is_connected());
    assert!(graph.min_degree() >= 3);
    assert!(graph.index_of(leaver).is_none());
    for p in partners {
        assert!(!kit.neighbours(p).contains(&leaver));
        assert_eq!(kit.state(p).name(), "active");
    }
    let (outcome, readings) = kit.round(1, &[]);
    assert_eq!(outcome.status, RoundStatus::Released(sum_of(&readings)));
}

#[test]
fn connection_loss_is_corrected_and_late_transmits_are_refused() {
    let mut kit = Kit::new(8, config());
    let lost = 3;
    let expected = kit.provider.open_round(NET, 1).unwrap();
    let mut readings = BTreeMap::new();
    for client in expected.into_iter().filter(|&c| c != lost) {
        let reading = vec![u64::from(client), 10];
        let out = kit.local(client, |s| s.transmit(1, &reading));
        readings.insert(client, reading);
        kit.provider
            .handle(out[0].clone(), &mut kit.provider_rng)
            .unwrap();
    }
    let corrections = kit.provider.close_round(NET).unwrap();
    assert_eq!(corrections.len(), kit.neighbours(lost).len());
    // The lost client's frame arrives late: refused, it would be unmasked by the resends.
    let late = kit.local(lost, |s| s.transmit(1, &[99, 99]));
    assert!(matches!(
        kit.provider.handle(late[0].clone(), &mut kit.provider_rng),
        Err(ProviderError::LateTransmit { client: 3, .. })
    ));
    kit.deliver(corrections);
    let outcome = kit.provider.take_outcomes().remove(0);
    assert_eq!(outcome.status, RoundStatus::Released(sum_of(&readings)));
    assert_eq!(outcome.resent, kit.neighbours(lost).len());
    // Its neighbours keep its seeds in backup; the next round runs without it.
    for &n in &kit.gateways[&lost].live_neighbours() {
        assert!(kit.state(n).backup_neighbours().contains(&lost));
    }
    let (outcome, readings) = kit.round(2, &[]);
    assert_eq!(outcome.status, RoundStatus::Released(sum_of(&readings)));
    assert!(!outcome.present.contains(&lost));
}

#[test]
fn re_registration_restores_the_same_edges_and_seeds() {
    let mut kit = Kit::new(8, config());
    let lost = 5;
    let before: Vec<(u32, u32)> = kit.provider.key_graph(NET).unwrap().edges().collect();
    kit.round(1, &[lost]);
    let out = kit.local(lost, |s| s.reconnect());
    kit.send(out);
    assert_eq!(kit.provider.status_of(lost), Some(MemberStatus::Active));
    let after: Vec<(u32, u32)> = kit.provider.key_graph(NET).unwrap().edges().collect();
    assert_eq!(before, after);
    for n in kit.neighbours(lost) {
        assert_eq!(kit.state(n).seed_with(lost), kit.state(lost).seed_with(n));
    }
    let (outcome, readings) = kit.round(2, &[]);
    assert_eq!(outcome.status, RoundStatus::Released(sum_of(&readings)));
    assert!(outcome.present.contains(&lost));
}

#[test]
fn resends_that_would_expose_the_gateway_are_refused() {
    let mut kit = Kit::new(6, config());
    let me = 1;
    let neighbours = kit.neighbours(me);
    assert!(neighbours.len() >= 3);
    let reading = [40u64, 2];
    kit.local(me, |s| s.transmit(1, &reading));
    let keep = neighbours.len() - 1;
    // Dropping all but one neighbour leaves 1 live neighbour, below the guard of 2.
    let answer = kit
        .try_receive(
            me,
            &ToGateway::Correction {
                dc_net_id: NET,
                round: 1,
                missing: neighbours[..keep].to_vec(),
                resend: true,
            },
        )
        .unwrap();
    assert_eq!(
        answer,
        vec![ToProvider::ResendRefused {
            dc_net_id: NET,
            client: me,
            round: 1,
            live: 1,
            needed: 2,
        }]
    );
}

#[test]
fn a_resend_drops_exactly_the_missing_keys() {
    let mut kit = Kit::new(6, config());
    let me = 1;
    let neighbours = kit.neighbours(me);
    let reading = [40u64, 2];
    kit.local(me, |s| s.transmit(1, &reading));
    let answer = kit
        .try_receive(
            me,
            &ToGateway::Correction {
                dc_net_id: NET,
                round: 1,
                missing: vec![neighbours[0]],
                resend: true,
            },
        )
        .unwrap();
    let ToProvider::Resend { lanes, .. } = &answer[0] else {
        panic!("{answer:?}");
    };
    // Recompute independently from the remaining seeds.
    let state = kit.state(me);
    let rest: Vec<(u32, &crate::EdgeSeed)> = neighbours[1..]
        .iter()
        .map(|&n| (n, state.seed_with(n).unwrap()))
        .collect();
    let mut expected = [0u64; 2];
    local_superposition(me, 1, &reading, rest, &mut expected).unwrap();
    assert_eq!(lanes, &expected.to_vec());
    assert_eq!(state.backup_neighbours(), vec![neighbours[0]]);
}

#[test]
fn rounds_below_the_minimum_are_withheld_without_resends() {
    let mut kit = Kit::new(
        5,
        ProviderConfig {
            min_clients: 5,
            ..config()
        },
    );
    let (outcome, _) = kit.round(1, &[2]);
    assert!(matches!(
        outcome.status,
        RoundStatus::Withheld(WithheldReason::TooFewPresent { present: 4, .. })
    ));
    assert_eq!(outcome.resent, 0);
}

#[test]
fn provider_notifications_in_every_phase() {
    // For each phase: (register, joined, exit, resend, transmit) accepted?
    let cases: [(&str, [bool; 5]); 4] = [
        ("idle", [true, false, true, false, false]),
        ("reconfiguring", [false, true, false, false, false]),
        ("collecting", [false, false, false, false, true]),
        ("correcting", [false, false, false, true, false]),
    ];
    for (phase, expected) in cases {
        for (input, accept) in expected.into_iter().enumerate() {
            let mut kit = Kit::new(6, config());
            kit.commission(50);
            let lost = 2;
            let answerer = kit.neighbours(lost)[0];
            let transmitter = 1 + u32::from(lost == 1 || answerer == 1) * 5;
            let mut resend = None;
            match phase {
                "idle" => {}
                "reconfiguring" => {
                    let out = kit.local(50, |s| s.register());
                    kit.provider
                        .handle(out[0].clone(), &mut kit.provider_rng)
                        .unwrap();
                }
                "collecting" => {
                    kit.provider.open_round(NET, 1).unwrap();
                }
                "correcting" => {
                    let expected = kit.provider.open_round(NET, 1).unwrap();
                    for c in expected.into_iter().filter(|&c| c != lost) {
                        let out = kit.local(c, |s| s.transmit(1, &[1, 1]));
                        kit.provider
                            .handle(out[0].clone(), &mut kit.provider_rng)
                            .unwrap();
                    }
                    let corrections = kit.provider.close_round(NET).unwrap();
                    let mine = corrections.iter().find(|e| e.to == answerer).unwrap();
                    resend = kit.try_receive(answerer, &mine.message).unwrap().pop();
                }
                _ => unreachable!(),
            }
            let message = match input {
                0 => ToProvider::Register {
                    client: if phase == "idle" { 50 } else { 51 },
                },
                1 => ToProvider::Joined {
                    dc_net_id: NET,
                    client: 50,
                },
                2 => kit.local(4, |s| s.leave()).remove(0),
                3 => resend.clone().unwrap_or(ToProvider::Resend {
                    dc_net_id: NET,
                    client: answerer,
                    round: 1,
                    lanes: vec![0, 0],
                }),
                _ => {
                    let sender = if phase == "correcting" {
                        lost
                    } else {
                        transmitter
                    };
                    kit.local(sender, |s| s.transmit(1, &[1, 1])).remove(0)
                }
            };
            if input == 0 && phase != "idle" {
                kit.commission(51);
            }
            let result = kit.provider.handle(message, &mut kit.provider_rng);
            assert_eq!(
                result.is_ok(),
                accept,
                "phase {phase}, input {input}: {result:?}"
            );
        }
    }
}
