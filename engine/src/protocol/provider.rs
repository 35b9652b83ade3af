//! The provider's side of the DC-net lifecycle: rosters, key graphs and round state per net.
//!
//! Each net is in one explicit phase, consumed by value on every message:
//!
//! ```text
//! Idle --Register/Exit--> Reconfiguring --all exchanges, acks and `joined` in--> Idle
//! Idle --open_round--> Collecting --close_round, nobody missing--> Idle
//!                       Collecting --close_round, clients missing--> Correcting --answers--> Idle
//! ```
//!
//! The provider draws every neighbour at random (clients never choose), relays key exchanges it
//! cannot read, never opens a round while seeds are changing, withholds sums that privacy
//! guards forbid, and writes every action to the audit trail. Messages that do not fit the
//! phase are refused with a typed error and change nothing.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::SliceRandom;

use super::audit::AuditEvent;
use super::kex::{IdentityRegistry, KexError, KeyShare, SignedExit};
use super::messages::{AckKind, Envelope, ToGateway, ToProvider};
use crate::graph::KeyGraph;
use crate::superpose::add_lanes;

/// Provider policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Neighbours per client (DESIGN §1: at least 3), fewer only while a net is smaller.
    pub k: usize,
    /// Fewest present clients for which a round's sum is released.
    pub min_clients: usize,
    /// A round in which a present client has fewer present neighbours than this is withheld:
    /// its frame would be masked by too few keys.
    pub min_live_neighbours: usize,
    /// Lanes per message.
    pub lanes: usize,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            k: 3,
            min_clients: 3,
            min_live_neighbours: 2,
            lanes: 1,
        }
    }
}

/// Why the provider refused a message or a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider operates no net with this id.
    #[error("unknown net {0}")]
    UnknownNet(u32),
    /// The provider operates no net at all, so a newcomer cannot be placed.
    #[error("no net to place client {0} in")]
    NoNet(u32),
    /// The sender is not a member of any net.
    #[error("client {0} is not a member of any net")]
    NotAMember(u32),
    /// The client has no identity key in the registry.
    #[error("client {0} has no registered identity key")]
    UnknownIdentity(u32),
    /// A registration from a client that is already in (or joining) its net.
    #[error("client {client} is already {status} in net {net}")]
    AlreadyMember {
        net: u32,
        client: u32,
        status: &'static str,
    },
    /// The message names another net than the sender's.
    #[error("client {client} is in net {expected}, message names net {got}")]
    WrongNet {
        client: u32,
        expected: u32,
        got: u32,
    },
    /// The message does not fit the net's phase.
    #[error("net {net}: {message} from client {client} is not accepted while {phase}")]
    WrongPhase {
        net: u32,
        client: u32,
        message: &'static str,
        phase: &'static str,
    },
    /// A lifecycle call that does not fit the net's phase.
    #[error("net {net}: cannot {action} while {phase}")]
    Busy {
        net: u32,
        action: &'static str,
        phase: &'static str,
    },
    /// A round number that is not after the net's last round.
    #[error("net {net}: round {round} is not after the last round {last}")]
    RoundReused { net: u32, round: u32, last: u32 },
    /// A frame for another round than the one being collected.
    #[error(
        "net {net}: frame from client {client} is for round {got}, collecting round {expected}"
    )]
    WrongRound {
        net: u32,
        client: u32,
        expected: u32,
        got: u32,
    },
    /// A transmit from a client that is not expected this round (joining or out).
    #[error("net {net}: client {client} is not expected in round {round}")]
    NotExpected { net: u32, client: u32, round: u32 },
    /// A second frame of the same kind from the same client in the same round.
    #[error("net {net}: duplicate {message} from client {client} in round {round}")]
    Duplicate {
        net: u32,
        client: u32,
        round: u32,
        message: &'static str,
    },
    /// A transmit after corrections were requested for its sender: using it would unmask it.
    #[error(
        "net {net}: late transmit from client {client} in round {round} refused (corrections were requested for it)"
    )]
    LateTransmit { net: u32, client: u32, round: u32 },
    /// A frame with the wrong lane count.
    #[error("net {net}: client {client} sent {got} lanes, the net uses {expected}")]
    Lanes {
        net: u32,
        client: u32,
        expected: usize,
        got: usize,
    },
    /// A message about a key exchange that is not open, or from a client outside it.
    #[error("net {net}: client {client} is not part of an open exchange {exchange}")]
    UnknownExchange {
        net: u32,
        client: u32,
        exchange: u64,
    },
    /// An answer nobody asked for.
    #[error("net {net}: unexpected {message} from client {client}")]
    Unexpected {
        net: u32,
        client: u32,
        message: &'static str,
    },
    /// The exit's signature does not verify.
    #[error("net {net}: exit of client {client}: {source}")]
    BadExit {
        net: u32,
        client: u32,
        source: KexError,
    },
    /// The exit lists other partners or exchanges than the provider's key graph.
    #[error("net {net}: exit of client {client} does not list its current edges")]
    ExitMismatch { net: u32, client: u32 },
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// Registered; exchanges in progress.
    Joining,
    /// Takes part in rounds.
    Active,
    /// Missed a round; out until it re-registers, its neighbours keep its seeds in backup.
    Out,
}

impl MemberStatus {
    fn name(self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Active => "active",
            Self::Out => "out",
        }
    }
}

/// Why a round's sum was not released although every correction came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithheldReason {
    /// Fewer present clients than the net's minimum.
    TooFewPresent { present: usize, minimum: usize },
    /// A present client had too few present neighbours: its frame was masked by too few keys.
    Exposed { client: u32, live: usize },
}

impl std::fmt::Display for WithheldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFewPresent { present, minimum } => {
                write!(f, "too-few-present:{present}<{minimum}")
            }
            Self::Exposed { client, live } => write!(f, "exposed-client:{client}:live={live}"),
        }
    }
}

/// The status of a finished round (DESIGN §4 `global.csv` status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundStatus {
    /// The sum of the present clients' readings.
    Released(Vec<u64>),
    /// A privacy guard held the sum back.
    Withheld(WithheldReason),
    /// A neighbour of a missing client refused to resend; no sum can be formed.
    Unrecoverable { refused_by: Vec<u32> },
}

/// A finished round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    pub dc_net_id: u32,
    pub round: u32,
    pub expected: usize,
    /// Clients whose transmit was used (ascending).
    pub present: Vec<u32>,
    pub resent: usize,
    pub status: RoundStatus,
}

/// An exchange the provider relays.
#[derive(Debug)]
struct OpenExchange {
    a: u32,
    b: u32,
    relayed: BTreeSet<u32>,
    done: BTreeSet<u32>,
}

impl OpenExchange {
    fn other(&self, client: u32) -> Option<u32> {
        if client == self.a {
            Some(self.b)
        } else if client == self.b {
            Some(self.a)
        } else {
            None
        }
    }
}

/// Seeds are changing: a join, rejoin or exit is being carried out.
#[derive(Debug)]
struct Reconfiguring {
    /// The client joining or rejoining, if any; it becomes active once it said `joined` and
    /// every exchange is confirmed.
    joining: Option<u32>,
    joined: bool,
    /// Exchanges replaced after a refusal: late answers about them are stale, not errors.
    abandoned: BTreeMap<u64, (u32, u32)>,
    exchanges: BTreeMap<u64, OpenExchange>,
    acks: BTreeSet<(u32, AckKind)>,
}

/// Transmit frames of one round are coming in.
#[derive(Debug)]
struct Collecting {
    round: u32,
    expected: BTreeSet<u32>,
    transmits: BTreeMap<u32, Vec<u64>>,
}

/// Clients were missing; their neighbours' answers are coming in.
#[derive(Debug)]
struct Correcting {
    round: u32,
    expected: usize,
    transmits: BTreeMap<u32, Vec<u64>>,
    missing: BTreeSet<u32>,
    awaiting: BTreeSet<u32>,
    resends: BTreeMap<u32, Vec<u64>>,
    refused: BTreeSet<u32>,
    /// `Some` when the round is withheld anyway (corrections only back seeds up).
    withheld: Option<WithheldReason>,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Reconfiguring(Reconfiguring),
    Collecting(Collecting),
    Correcting(Correcting),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Reconfiguring(_) => "reconfiguring",
            Self::Collecting(_) => "collecting",
            Self::Correcting(_) => "correcting",
        }
    }
}

/// One net's roster and key graph.
#[derive(Debug)]
struct NetData {
    id: u32,
    /// Established edges, including those of out clients (their seeds are in backup).
    graph: KeyGraph,
    status: BTreeMap<u32, MemberStatus>,
    /// The exchange that created each established edge, keyed by (lower, higher) id.
    edge_exchange: BTreeMap<(u32, u32), u64>,
    /// Planned edges with an out end: exchanged when both ends are active again.
    deferred: BTreeSet<(u32, u32)>,
    /// Signed exits of former neighbours, for out clients to receive when they return.
    queued_exits: BTreeMap<u32, Vec<SignedExit>>,
    last_round: Option<u32>,
}

#[derive(Debug)]
struct Net {
    data: NetData,
    phase: Phase,
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Output of one provider step: messages to deliver, in order.
pub type Outbox = Vec<Envelope>;

/// The provider.
#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    registry: IdentityRegistry,
    nets: BTreeMap<u32, Net>,
    home: BTreeMap<u32, u32>,
    next_exchange: u64,
    audit: Vec<AuditEvent>,
    outcomes: Vec<RoundOutcome>,
}

impl Provider {
    /// A provider operating the (empty) nets `net_ids`.
    pub fn new(config: ProviderConfig, registry: IdentityRegistry, net_ids: &[u32]) -> Self {
        let nets = net_ids
            .iter()
            .map(|&id| {
                let data = NetData {
                    id,
                    graph: KeyGraph::new(id),
                    status: BTreeMap::new(),
                    edge_exchange: BTreeMap::new(),
                    deferred: BTreeSet::new(),
                    queued_exits: BTreeMap::new(),
                    last_round: None,
                };
                (
                    id,
                    Net {
                        data,
                        phase: Phase::Idle,
                    },
                )
            })
            .collect();
        Self {
            config,
            registry,
            nets,
            home: BTreeMap::new(),
            next_exchange: 0,
            audit: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Records a newly commissioned gateway's identity key in the provider's registry.
    pub fn commission(&mut self, client: u32, identity: ed25519_dalek::VerifyingKey) {
        self.registry.insert(client, identity);
    }

    /// The policy.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Takes the audit events recorded since the last call, oldest first.
    pub fn take_audit(&mut self) -> Vec<AuditEvent> {
        std::mem::take(&mut self.audit)
    }

    /// Takes the round outcomes finished since the last call.
    pub fn take_outcomes(&mut self) -> Vec<RoundOutcome> {
        std::mem::take(&mut self.outcomes)
    }

    /// The ids of the nets.
    pub fn net_ids(&self) -> Vec<u32> {
        self.nets.keys().copied().collect()
    }

    /// The net `client` belongs to.
    pub fn home_of(&self, client: u32) -> Option<u32> {
        self.home.get(&client).copied()
    }

    /// The status of `client`.
    pub fn status_of(&self, client: u32) -> Option<MemberStatus> {
        let net = self.nets.get(&self.home_of(client)?)?;
        net.data.status.get(&client).copied()
    }

    /// Members of `net` with `status`, ascending.
    pub fn members(&self, net: u32, status: MemberStatus) -> Vec<u32> {
        self.nets.get(&net).map_or_else(Vec::new, |n| {
            n.data
                .status
                .iter()
                .filter(|(_, s)| **s == status)
                .map(|(&c, _)| c)
                .collect()
        })
    }

    /// Whether `net` is idle (no exchange, round or correction in progress).
    pub fn is_idle(&self, net: u32) -> bool {
        self.nets
            .get(&net)
            .is_some_and(|n| matches!(n.phase, Phase::Idle))
    }

    /// The established key graph of `net` (edges whose seeds both ends hold, live or backup).
    pub fn key_graph(&self, net: u32) -> Option<&KeyGraph> {
        self.nets.get(&net).map(|n| &n.data.graph)
    }

    /// The membership graph of `net`: established edges plus planned edges deferred until an
    /// out client returns, over every member. This is the graph the policy keeps connected.
    pub fn membership_graph(&self, net: u32) -> Option<KeyGraph> {
        let data = &self.nets.get(&net)?.data;
        Some(membership(data))
    }

    fn net_mut(&mut self, id: u32) -> Result<&mut Net, ProviderError> {
        self.nets.get_mut(&id).ok_or(ProviderError::UnknownNet(id))
    }

    /// Handles one message from a gateway; returns the messages to deliver.
    pub fn handle(
        &mut self,
        message: ToProvider,
        rng: &mut impl Rng,
    ) -> Result<Outbox, ProviderError> {
        let client = message.sender();
        let result = self.dispatch(message.clone(), rng);
        if let Err(error) = &result {
            self.audit.push(AuditEvent::Rejected {
                net: self.home_of(client).unwrap_or(0),
                client,
                message: message.kind().to_string(),
                reason: audit_token(&error.to_string()),
            });
        }
        result
    }

    fn dispatch(
        &mut self,
        message: ToProvider,
        rng: &mut impl Rng,
    ) -> Result<Outbox, ProviderError> {
        let client = message.sender();
        if let ToProvider::Register { client } = message {
            return self.register(client, rng);
        }
        let net_id = self
            .home_of(client)
            .ok_or(ProviderError::NotAMember(client))?;
        if let Some(got) = message_net(&message).filter(|&got| got != net_id) {
            return Err(ProviderError::WrongNet {
                client,
                expected: net_id,
                got,
            });
        }
        if let ToProvider::Exit(exit) = message {
            return self.exit(net_id, exit, rng);
        }
        let config = self.config;
        let mut next_exchange = self.next_exchange;
        let Self {
            nets,
            audit,
            outcomes,
            ..
        } = self;
        let net = nets
            .get_mut(&net_id)
            .ok_or(ProviderError::UnknownNet(net_id))?;
        let phase = std::mem::replace(&mut net.phase, Phase::Idle);
        let mut cx = Cx {
            data: &mut net.data,
            config: &config,
            audit,
            outcomes,
            next_exchange: &mut next_exchange,
        };
        let mut out = Vec::new();
        let result = match phase {
            Phase::Reconfiguring(state) => state.handle(&mut cx, message, &mut out),
            Phase::Collecting(state) => state.handle(&mut cx, message),
            Phase::Correcting(state) => state.handle(&mut cx, message),
            Phase::Idle => Err(Box::new((
                Phase::Idle,
                ProviderError::WrongPhase {
                    net: net_id,
                    client,
                    message: message.kind(),
                    phase: "idle",
                },
            ))),
        };
        self.next_exchange = next_exchange;
        match result {
            Ok(phase) => {
                net.phase = phase;
                Ok(out)
            }
            Err(refused) => {
                let (phase, error) = *refused;
                net.phase = phase;
                Err(error)
            }
        }
    }

    /// Notification 1: a newcomer (placed in the smallest net with random neighbours) or an
    /// out client coming back (its backed-up edges restored).
    fn register(&mut self, client: u32, rng: &mut impl Rng) -> Result<Outbox, ProviderError> {
        if self.registry.get(client).is_err() {
            return Err(ProviderError::UnknownIdentity(client));
        }
        let net_id = match self.home_of(client) {
            Some(net) => net,
            None => self
                .nets
                .iter()
                .min_by_key(|(_, n)| n.data.status.len())
                .map(|(&id, _)| id)
                .ok_or(ProviderError::NoNet(client))?,
        };
        let k = self.config.k;
        let mut next_exchange = self.next_exchange;
        let Self { nets, audit, .. } = self;
        let net = nets
            .get_mut(&net_id)
            .ok_or(ProviderError::UnknownNet(net_id))?;
        if !matches!(net.phase, Phase::Idle) {
            return Err(ProviderError::Busy {
                net: net_id,
                action: "register a client",
                phase: net.phase.name(),
            });
        }
        let data = &mut net.data;
        let mut out = Vec::new();
        let mut reconf = Reconfiguring {
            joining: Some(client),
            joined: false,
            abandoned: BTreeMap::new(),
            exchanges: BTreeMap::new(),
            acks: BTreeSet::new(),
        };
        match data.status.get(&client).copied() {
            Some(status @ (MemberStatus::Active | MemberStatus::Joining)) => {
                return Err(ProviderError::AlreadyMember {
                    net: net_id,
                    client,
                    status: status.name(),
                });
            }
            None => {
                let active: Vec<u32> = data
                    .status
                    .iter()
                    .filter(|(_, s)| **s == MemberStatus::Active)
                    .map(|(&c, _)| c)
                    .collect();
                let mut neighbours: Vec<u32> = active
                    .choose_multiple(rng, k.min(active.len()))
                    .copied()
                    .collect();
                neighbours.sort_unstable();
                // While too many members are out for k active neighbours, plan edges with out
                // members as well; they are exchanged when those members return.
                let out_members: Vec<u32> = data
                    .status
                    .iter()
                    .filter(|(_, s)| **s == MemberStatus::Out)
                    .map(|(&c, _)| c)
                    .collect();
                let short = k.saturating_sub(neighbours.len()).min(out_members.len());
                for &o in out_members.choose_multiple(rng, short) {
                    data.deferred.insert(ordered(client, o));
                }
                data.status.insert(client, MemberStatus::Joining);
                data.graph.add_client(client);
                audit.push(AuditEvent::Assigned {
                    net: net_id,
                    client,
                    neighbours: neighbours.clone(),
                });
                out.push(Envelope {
                    to: client,
                    message: ToGateway::Assigned {
                        dc_net_id: net_id,
                        neighbours: neighbours.clone(),
                    },
                });
                for peer in neighbours {
                    open_exchange(
                        net_id,
                        client,
                        peer,
                        &mut next_exchange,
                        &mut reconf,
                        audit,
                        &mut out,
                    );
                }
                self.home.insert(client, net_id);
            }
            Some(MemberStatus::Out) => {
                for exit in data.queued_exits.remove(&client).unwrap_or_default() {
                    audit.push(AuditEvent::Notified {
                        net: net_id,
                        to: client,
                        what: "exit".into(),
                        about: exit.client,
                    });
                    reconf.acks.insert((
                        client,
                        AckKind::ExitProcessed {
                            client: exit.client,
                        },
                    ));
                    out.push(Envelope {
                        to: client,
                        message: ToGateway::Exit(exit),
                    });
                }
                let established = data.graph.neighbours(client).unwrap_or_default().to_vec();
                let (mut live, out_now): (Vec<u32>, Vec<u32>) = established
                    .iter()
                    .partition(|n| data.status.get(n) == Some(&MemberStatus::Active));
                for &n in &live {
                    audit.push(AuditEvent::Notified {
                        net: net_id,
                        to: n,
                        what: "reinstate".into(),
                        about: client,
                    });
                    out.push(Envelope {
                        to: n,
                        message: ToGateway::Reinstate {
                            dc_net_id: net_id,
                            client,
                        },
                    });
                    reconf.acks.insert((n, AckKind::Reinstated { client }));
                }
                // Deferred edges whose other end is active are exchanged now.
                let mut fresh: Vec<u32> = data
                    .deferred
                    .iter()
                    .filter_map(|&(a, b)| match (a == client, b == client) {
                        (true, _) => Some(b),
                        (_, true) => Some(a),
                        _ => None,
                    })
                    .filter(|p| data.status.get(p) == Some(&MemberStatus::Active))
                    .collect();
                for &p in &fresh {
                    data.deferred.remove(&ordered(client, p));
                }
                // Top up to k live neighbours with random active clients, where the net allows.
                let taken: BTreeSet<u32> = established.iter().chain(&fresh).copied().collect();
                let candidates: Vec<u32> = data
                    .status
                    .iter()
                    .filter(|(c, s)| {
                        **s == MemberStatus::Active && **c != client && !taken.contains(c)
                    })
                    .map(|(&c, _)| c)
                    .collect();
                let short = k.saturating_sub(live.len() + fresh.len());
                fresh.extend(candidates.choose_multiple(rng, short.min(candidates.len())));
                fresh.sort_unstable();
                live.extend(&fresh);
                live.sort_unstable();
                data.status.insert(client, MemberStatus::Joining);
                audit.push(AuditEvent::Restored {
                    net: net_id,
                    client,
                    live: live.clone(),
                    out: out_now.clone(),
                });
                out.push(Envelope {
                    to: client,
                    message: ToGateway::Restored {
                        dc_net_id: net_id,
                        live,
                        out: out_now,
                    },
                });
                for peer in fresh {
                    open_exchange(
                        net_id,
                        client,
                        peer,
                        &mut next_exchange,
                        &mut reconf,
                        audit,
                        &mut out,
                    );
                }
            }
        }
        net.phase = Phase::Reconfiguring(reconf);
        self.next_exchange = next_exchange;
        Ok(out)
    }

    /// Notification 3 from a leaving client: drop it, tell its partners (relaying its signed
    /// exit), and link the partners so the graph stays connected with degrees of at least `k`
    /// where the net allows.
    fn exit(
        &mut self,
        net_id: u32,
        exit: SignedExit,
        rng: &mut impl Rng,
    ) -> Result<Outbox, ProviderError> {
        let client = exit.client;
        let identity = self
            .registry
            .get(client)
            .map_err(|_| ProviderError::UnknownIdentity(client))?;
        exit.verify(identity)
            .map_err(|source| ProviderError::BadExit {
                net: net_id,
                client,
                source,
            })?;
        let k = self.config.k;
        let mut next_exchange = self.next_exchange;
        let Self {
            nets, audit, home, ..
        } = self;
        let net = nets
            .get_mut(&net_id)
            .ok_or(ProviderError::UnknownNet(net_id))?;
        if !matches!(net.phase, Phase::Idle) {
            return Err(ProviderError::Busy {
                net: net_id,
                action: "carry out an exit",
                phase: net.phase.name(),
            });
        }
        let data = &mut net.data;
        if data.status.get(&client) != Some(&MemberStatus::Active) {
            return Err(ProviderError::Unexpected {
                net: net_id,
                client,
                message: "exit",
            });
        }
        let partners = data.graph.neighbours(client).unwrap_or_default().to_vec();
        let listed: Vec<(u32, u64)> = partners
            .iter()
            .map(|&p| (p, data.edge_exchange.get(&ordered(client, p)).copied()))
            .map(|(p, e)| (p, e.unwrap_or(u64::MAX)))
            .collect();
        if listed != exit.partners {
            return Err(ProviderError::ExitMismatch {
                net: net_id,
                client,
            });
        }

        // Partners through deferred edges hold no seed with the leaver but lose a planned
        // edge, so they are relinked too.
        let mut relink: Vec<u32> = data
            .deferred
            .iter()
            .filter_map(|&(a, b)| match (a == client, b == client) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .chain(partners.iter().copied())
            .collect();
        relink.sort_unstable();
        relink.dedup();
        data.graph.remove_client(client);
        data.status.remove(&client);
        data.queued_exits.remove(&client);
        data.deferred.retain(|&(a, b)| a != client && b != client);
        data.edge_exchange
            .retain(|&(a, b), _| a != client && b != client);
        home.remove(&client);
        audit.push(AuditEvent::Exited {
            net: net_id,
            client,
            partners: partners.clone(),
        });

        let mut out = Vec::new();
        let mut reconf = Reconfiguring {
            joining: None,
            joined: false,
            abandoned: BTreeMap::new(),
            exchanges: BTreeMap::new(),
            acks: BTreeSet::new(),
        };
        for &p in &partners {
            let active = data.status.get(&p) == Some(&MemberStatus::Active);
            audit.push(AuditEvent::Notified {
                net: net_id,
                to: p,
                what: if active { "exit" } else { "exit-queued" }.into(),
                about: client,
            });
            if active {
                out.push(Envelope {
                    to: p,
                    message: ToGateway::Exit(exit.clone()),
                });
                reconf.acks.insert((p, AckKind::ExitProcessed { client }));
            } else {
                data.queued_exits.entry(p).or_default().push(exit.clone());
            }
        }

        for (a, b) in relink_plan(data, &relink, k, rng) {
            let both_active = [a, b]
                .iter()
                .all(|c| data.status.get(c) == Some(&MemberStatus::Active));
            if both_active {
                open_exchange(
                    net_id,
                    a,
                    b,
                    &mut next_exchange,
                    &mut reconf,
                    audit,
                    &mut out,
                );
            } else {
                data.deferred.insert(ordered(a, b));
            }
        }
        net.phase = if reconf.exchanges.is_empty() && reconf.acks.is_empty() {
            Phase::Idle
        } else {
            Phase::Reconfiguring(reconf)
        };
        self.next_exchange = next_exchange;
        Ok(out)
    }

    /// Starts round `round` of `net`: every active member is expected to transmit. Returns the
    /// expected clients.
    pub fn open_round(&mut self, net_id: u32, round: u32) -> Result<Vec<u32>, ProviderError> {
        let net = self.net_mut(net_id)?;
        if !matches!(net.phase, Phase::Idle) {
            return Err(ProviderError::Busy {
                net: net_id,
                action: "open a round",
                phase: net.phase.name(),
            });
        }
        if let Some(last) = net.data.last_round.filter(|&last| round <= last) {
            return Err(ProviderError::RoundReused {
                net: net_id,
                round,
                last,
            });
        }
        net.data.last_round = Some(round);
        let expected: BTreeSet<u32> = net
            .data
            .status
            .iter()
            .filter(|(_, s)| **s == MemberStatus::Active)
            .map(|(&c, _)| c)
            .collect();
        let list = expected.iter().copied().collect();
        net.phase = Phase::Collecting(Collecting {
            round,
            expected,
            transmits: BTreeMap::new(),
        });
        Ok(list)
    }

    /// The round's deadline passed: release or withhold the sum, or, if clients are missing,
    /// declare them out and ask their present neighbours for corrections (notification 4).
    pub fn close_round(&mut self, net_id: u32) -> Result<Outbox, ProviderError> {
        let config = self.config;
        let Self {
            nets,
            audit,
            outcomes,
            ..
        } = self;
        let net = nets
            .get_mut(&net_id)
            .ok_or(ProviderError::UnknownNet(net_id))?;
        let phase = std::mem::replace(&mut net.phase, Phase::Idle);
        let Phase::Collecting(collecting) = phase else {
            let name = phase.name();
            net.phase = phase;
            return Err(ProviderError::Busy {
                net: net_id,
                action: "close a round",
                phase: name,
            });
        };
        let data = &mut net.data;
        let Collecting {
            round,
            expected,
            transmits,
        } = collecting;
        let present: BTreeSet<u32> = transmits.keys().copied().collect();
        let missing: BTreeSet<u32> = expected.difference(&present).copied().collect();
        let withheld = privacy_guard(data, &present, &config);
        if missing.is_empty() {
            let correcting = Correcting {
                round,
                expected: expected.len(),
                transmits,
                missing,
                awaiting: BTreeSet::new(),
                resends: BTreeMap::new(),
                refused: BTreeSet::new(),
                withheld,
            };
            finish_round(data.id, correcting, audit, outcomes);
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut awaiting = BTreeSet::new();
        for &x in &missing {
            data.status.insert(x, MemberStatus::Out);
        }
        let resend = withheld.is_none();
        for &n in &present {
            let named: Vec<u32> = data
                .graph
                .neighbours(n)
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|c| missing.contains(c))
                .collect();
            if named.is_empty() {
                continue;
            }
            awaiting.insert(n);
            out.push(Envelope {
                to: n,
                message: ToGateway::Correction {
                    dc_net_id: net_id,
                    round,
                    missing: named,
                    resend,
                },
            });
        }
        audit.push(AuditEvent::CorrectionRequested {
            net: net_id,
            round,
            missing: missing.iter().copied().collect(),
            neighbours: awaiting.iter().copied().collect(),
            resend,
        });
        let correcting = Correcting {
            round,
            expected: expected.len(),
            transmits,
            missing,
            awaiting,
            resends: BTreeMap::new(),
            refused: BTreeSet::new(),
            withheld,
        };
        if correcting.awaiting.is_empty() {
            finish_round(net_id, correcting, audit, outcomes);
        } else {
            net.phase = Phase::Correcting(correcting);
        }
        Ok(out)
    }
}

/// Everything a phase handler may touch besides its own state.
struct Cx<'a> {
    data: &'a mut NetData,
    config: &'a ProviderConfig,
    audit: &'a mut Vec<AuditEvent>,
    outcomes: &'a mut Vec<RoundOutcome>,
    next_exchange: &'a mut u64,
}

type PhaseResult = Result<Phase, Box<(Phase, ProviderError)>>;

fn message_net(message: &ToProvider) -> Option<u32> {
    match message {
        ToProvider::Register { .. } => None,
        ToProvider::Joined { dc_net_id, .. }
        | ToProvider::Resend { dc_net_id, .. }
        | ToProvider::Transmit { dc_net_id, .. }
        | ToProvider::KexDone { dc_net_id, .. }
        | ToProvider::KexRefused { dc_net_id, .. }
        | ToProvider::Ack { dc_net_id, .. }
        | ToProvider::ResendRefused { dc_net_id, .. } => Some(*dc_net_id),
        ToProvider::Exit(exit) => Some(exit.dc_net_id),
        ToProvider::KeyShare(share) => Some(share.dc_net_id),
    }
}

fn wrong_phase(net: u32, message: &ToProvider, phase: &'static str) -> ProviderError {
    ProviderError::WrongPhase {
        net,
        client: message.sender(),
        message: message.kind(),
        phase,
    }
}

/// Turns an error message into one audit token (no spaces).
fn audit_token(text: &str) -> String {
    text.replace(' ', "_")
}

fn open_exchange(
    net: u32,
    a: u32,
    b: u32,
    next_exchange: &mut u64,
    reconf: &mut Reconfiguring,
    audit: &mut Vec<AuditEvent>,
    out: &mut Outbox,
) {
    let exchange = *next_exchange;
    *next_exchange += 1;
    reconf.exchanges.insert(
        exchange,
        OpenExchange {
            a,
            b,
            relayed: BTreeSet::new(),
            done: BTreeSet::new(),
        },
    );
    audit.push(AuditEvent::KexOpened {
        net,
        exchange,
        a,
        b,
    });
    for (to, peer) in [(a, b), (b, a)] {
        out.push(Envelope {
            to,
            message: ToGateway::KexStart {
                dc_net_id: net,
                exchange,
                peer,
            },
        });
    }
}

fn membership(data: &NetData) -> KeyGraph {
    let mut graph = data.graph.clone();
    for &client in data.status.keys() {
        graph.add_client(client);
    }
    for &(a, b) in &data.deferred {
        // Deferred edges join two members, never a client with itself.
        let _ = graph.add_edge(a, b);
    }
    graph
}

/// New edges after an exit: first reconnect any components the exit split (through the
/// partners, which touch every piece), then link partners that fell below `k`, preferring
/// other partners, then any member, always drawn at random.
fn relink_plan(data: &NetData, partners: &[u32], k: usize, rng: &mut impl Rng) -> Vec<(u32, u32)> {
    let mut graph = membership(data);
    let mut plan = Vec::new();
    let mut link = |graph: &mut KeyGraph, a: u32, b: u32| {
        if graph.add_edge(a, b) == Ok(true) {
            plan.push(ordered(a, b));
        }
    };
    let components = graph.components();
    if components.len() > 1 {
        let mut anchors: Vec<u32> = components
            .iter()
            .filter_map(|component| {
                let in_partners: Vec<u32> = component
                    .iter()
                    .copied()
                    .filter(|c| partners.contains(c))
                    .collect();
                let pool = if in_partners.is_empty() {
                    component
                } else {
                    &in_partners
                };
                pool.choose(rng).copied()
            })
            .collect();
        anchors.shuffle(rng);
        for pair in anchors.windows(2) {
            link(&mut graph, pair[0], pair[1]);
        }
    }
    let mut order = partners.to_vec();
    order.shuffle(rng);
    for &p in &order {
        while graph.degree(p) < k {
            let fits = |c: &u32| *c != p && !graph.contains_edge(p, *c);
            let short: Vec<u32> = partners
                .iter()
                .copied()
                .filter(|c| fits(c) && graph.degree(*c) < k)
                .collect();
            let choice = if short.is_empty() {
                let others: Vec<u32> = partners.iter().copied().filter(fits).collect();
                if others.is_empty() {
                    let anyone: Vec<u32> = graph.clients().iter().copied().filter(fits).collect();
                    anyone.choose(rng).copied()
                } else {
                    others.choose(rng).copied()
                }
            } else {
                short.choose(rng).copied()
            };
            let Some(c) = choice else { break };
            link(&mut graph, p, c);
        }
    }
    plan
}

/// `Some(reason)` when releasing a sum over `present` would break a privacy guard.
fn privacy_guard(
    data: &NetData,
    present: &BTreeSet<u32>,
    config: &ProviderConfig,
) -> Option<WithheldReason> {
    let minimum = config.min_clients.max(2);
    if present.len() < minimum {
        return Some(WithheldReason::TooFewPresent {
            present: present.len(),
            minimum,
        });
    }
    present.iter().find_map(|&c| {
        let live = data
            .graph
            .neighbours(c)
            .unwrap_or_default()
            .iter()
            .filter(|n| present.contains(n))
            .count();
        (live < config.min_live_neighbours).then_some(WithheldReason::Exposed { client: c, live })
    })
}

fn finish_round(
    net: u32,
    state: Correcting,
    audit: &mut Vec<AuditEvent>,
    outcomes: &mut Vec<RoundOutcome>,
) {
    let present: Vec<u32> = state.transmits.keys().copied().collect();
    let status = if let Some(reason) = state.withheld {
        audit.push(AuditEvent::Withheld {
            net,
            round: state.round,
            expected: state.expected,
            present: present.len(),
            reason: reason.to_string(),
        });
        RoundStatus::Withheld(reason)
    } else if !state.refused.is_empty() {
        let refused_by: Vec<u32> = state.refused.iter().copied().collect();
        audit.push(AuditEvent::Unrecoverable {
            net,
            round: state.round,
            expected: state.expected,
            present: present.len(),
            reason: format!(
                "resend-refused-by:{}",
                refused_by
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        });
        RoundStatus::Unrecoverable { refused_by }
    } else {
        let lanes = state.transmits.values().next().map_or(0, Vec::len);
        let mut sum = vec![0u64; lanes];
        for (client, transmit) in &state.transmits {
            add_lanes(&mut sum, state.resends.get(client).unwrap_or(transmit));
        }
        audit.push(AuditEvent::Released {
            net,
            round: state.round,
            expected: state.expected,
            present: present.len(),
            resent: state.resends.len(),
        });
        RoundStatus::Released(sum)
    };
    outcomes.push(RoundOutcome {
        dc_net_id: net,
        round: state.round,
        expected: state.expected,
        present,
        resent: state.resends.len(),
        status,
    });
}

impl Reconfiguring {
    fn handle(mut self, cx: &mut Cx<'_>, message: ToProvider, out: &mut Outbox) -> PhaseResult {
        let net = cx.data.id;
        let result = match &message {
            ToProvider::KeyShare(share) => self.relay(cx, share, out),
            ToProvider::KexDone {
                client,
                exchange,
                peer,
                ..
            } => self.kex_done(cx, *client, *exchange, *peer),
            ToProvider::KexRefused {
                client,
                exchange,
                peer,
                ..
            } => self.kex_refused(cx, *client, *exchange, *peer, out),
            ToProvider::Ack { client, of, .. } => {
                if self.acks.remove(&(*client, *of)) {
                    Ok(())
                } else {
                    Err(ProviderError::Unexpected {
                        net,
                        client: *client,
                        message: "ack",
                    })
                }
            }
            ToProvider::Joined { client, .. } => {
                if self.joining == Some(*client) && !self.joined {
                    self.joined = true;
                    Ok(())
                } else {
                    Err(ProviderError::Unexpected {
                        net,
                        client: *client,
                        message: "joined",
                    })
                }
            }
            _ => Err(wrong_phase(net, &message, "reconfiguring")),
        };
        match result {
            Err(error) => Err(Box::new((Phase::Reconfiguring(self), error))),
            Ok(()) if self.is_complete() => {
                if let Some(client) = self.joining {
                    cx.data.status.insert(client, MemberStatus::Active);
                    cx.audit.push(AuditEvent::Joined { net, client });
                }
                Ok(Phase::Idle)
            }
            Ok(()) => Ok(Phase::Reconfiguring(self)),
        }
    }

    fn is_complete(&self) -> bool {
        (self.joining.is_none() || self.joined) && self.exchanges.is_empty() && self.acks.is_empty()
    }

    /// Whether `client` is an end of the abandoned exchange `exchange` (its late answers are
    /// dropped: a fresh exchange for the pair is already open).
    fn is_stale(&self, client: u32, exchange: u64) -> bool {
        self.abandoned
            .get(&exchange)
            .is_some_and(|&(a, b)| client == a || client == b)
    }

    fn exchange_of(
        &mut self,
        net: u32,
        client: u32,
        exchange: u64,
    ) -> Result<&mut OpenExchange, ProviderError> {
        self.exchanges
            .get_mut(&exchange)
            .filter(|e| e.other(client).is_some())
            .ok_or(ProviderError::UnknownExchange {
                net,
                client,
                exchange,
            })
    }

    fn relay(
        &mut self,
        cx: &mut Cx<'_>,
        share: &KeyShare,
        out: &mut Outbox,
    ) -> Result<(), ProviderError> {
        let net = cx.data.id;
        if self.is_stale(share.from, share.exchange) {
            return Ok(());
        }
        let open = self.exchange_of(net, share.from, share.exchange)?;
        if open.other(share.from) != Some(share.to) || open.relayed.contains(&share.from) {
            return Err(ProviderError::Unexpected {
                net,
                client: share.from,
                message: "key-share",
            });
        }
        open.relayed.insert(share.from);
        cx.audit.push(AuditEvent::Relayed {
            net,
            exchange: share.exchange,
            from: share.from,
            to: share.to,
        });
        out.push(Envelope {
            to: share.to,
            message: ToGateway::KeyShare(share.clone()),
        });
        Ok(())
    }

    fn kex_done(
        &mut self,
        cx: &mut Cx<'_>,
        client: u32,
        exchange: u64,
        peer: u32,
    ) -> Result<(), ProviderError> {
        let net = cx.data.id;
        if self.is_stale(client, exchange) {
            return Ok(());
        }
        let open = self.exchange_of(net, client, exchange)?;
        if open.other(client) != Some(peer) || !open.relayed.contains(&peer) {
            return Err(ProviderError::Unexpected {
                net,
                client,
                message: "kex-done",
            });
        }
        open.done.insert(client);
        if open.done.len() == 2 {
            let (a, b) = ordered(open.a, open.b);
            self.exchanges.remove(&exchange);
            // Exchanges only join distinct clients (open_exchange is never given a == b).
            let _ = cx.data.graph.add_edge(a, b);
            cx.data.edge_exchange.insert((a, b), exchange);
            cx.audit.push(AuditEvent::Linked {
                net,
                exchange,
                a,
                b,
            });
        }
        Ok(())
    }

    /// A gateway caught an altered share: the pair gets no seed from this exchange; a fresh
    /// exchange (new ephemeral keys on both ends) replaces it.
    fn kex_refused(
        &mut self,
        cx: &mut Cx<'_>,
        client: u32,
        exchange: u64,
        peer: u32,
        out: &mut Outbox,
    ) -> Result<(), ProviderError> {
        let net = cx.data.id;
        if self.is_stale(client, exchange) {
            return Ok(());
        }
        let open = self.exchange_of(net, client, exchange)?;
        if open.other(client) != Some(peer) {
            return Err(ProviderError::Unexpected {
                net,
                client,
                message: "kex-refused",
            });
        }
        let (a, b) = (open.a, open.b);
        self.exchanges.remove(&exchange);
        self.abandoned.insert(exchange, (a, b));
        cx.audit.push(AuditEvent::KexRefused {
            net,
            exchange,
            by: client,
            peer,
        });
        open_exchange(net, a, b, cx.next_exchange, self, cx.audit, out);
        Ok(())
    }
}

impl Collecting {
    fn handle(mut self, cx: &mut Cx<'_>, message: ToProvider) -> PhaseResult {
        let net = cx.data.id;
        let ToProvider::Transmit {
            client,
            round,
            lanes,
            ..
        } = message
        else {
            return Err(Box::new((
                Phase::Collecting(self),
                wrong_phase(net, &message, "collecting"),
            )));
        };
        let error = if round != self.round {
            Some(ProviderError::WrongRound {
                net,
                client,
                expected: self.round,
                got: round,
            })
        } else if !self.expected.contains(&client) {
            Some(ProviderError::NotExpected { net, client, round })
        } else if self.transmits.contains_key(&client) {
            Some(ProviderError::Duplicate {
                net,
                client,
                round,
                message: "transmit",
            })
        } else if lanes.len() != cx.config.lanes {
            Some(ProviderError::Lanes {
                net,
                client,
                expected: cx.config.lanes,
                got: lanes.len(),
            })
        } else {
            None
        };
        if let Some(error) = error {
            return Err(Box::new((Phase::Collecting(self), error)));
        }
        self.transmits.insert(client, lanes);
        Ok(Phase::Collecting(self))
    }
}

impl Correcting {
    fn handle(mut self, cx: &mut Cx<'_>, message: ToProvider) -> PhaseResult {
        let net = cx.data.id;
        let client = message.sender();
        let error = match &message {
            ToProvider::Transmit { round, .. } if self.missing.contains(&client) => {
                Some(ProviderError::LateTransmit {
                    net,
                    client,
                    round: *round,
                })
            }
            ToProvider::Resend { round, lanes, .. } => {
                self.answer_error(net, client, *round, true).or_else(|| {
                    (lanes.len() != cx.config.lanes).then_some(ProviderError::Lanes {
                        net,
                        client,
                        expected: cx.config.lanes,
                        got: lanes.len(),
                    })
                })
            }
            ToProvider::ResendRefused { round, .. } => self.answer_error(net, client, *round, true),
            ToProvider::Ack {
                of: AckKind::BackedUp { round },
                ..
            } => self.answer_error(net, client, *round, false),
            _ => Some(wrong_phase(net, &message, "correcting")),
        };
        if let Some(error) = error {
            return Err(Box::new((Phase::Correcting(self), error)));
        }
        self.awaiting.remove(&client);
        match message {
            ToProvider::Resend { lanes, .. } => {
                self.resends.insert(client, lanes);
            }
            ToProvider::ResendRefused { .. } => {
                self.refused.insert(client);
            }
            _ => {}
        }
        if self.awaiting.is_empty() {
            finish_round(net, self, cx.audit, cx.outcomes);
            Ok(Phase::Idle)
        } else {
            Ok(Phase::Correcting(self))
        }
    }

    /// Whether an answer from `client` for `round` (a resend or its refusal when `resend`, a
    /// backup acknowledgement otherwise) is one this round is waiting for.
    fn answer_error(
        &self,
        net: u32,
        client: u32,
        round: u32,
        resend: bool,
    ) -> Option<ProviderError> {
        if round != self.round {
            Some(ProviderError::WrongRound {
                net,
                client,
                expected: self.round,
                got: round,
            })
        } else if !self.awaiting.contains(&client) || resend != self.withheld.is_none() {
            Some(ProviderError::Unexpected {
                net,
                client,
                message: if resend { "resend" } else { "ack" },
            })
        } else {
            None
        }
    }
}
