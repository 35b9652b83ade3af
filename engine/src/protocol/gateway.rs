//! The gateway's side of the DC-net lifecycle, as a state machine consumed by value.
//!
//! ```text
//! Unregistered --register--> Registering --Assigned--> Joining --all seeds--> Active
//! Active <--seeds done-- Relinking <--KexStart-- Active
//! Active --reconnect--> Rejoining --Restored--> Joining --> Active
//! Active --leave--> Departed
//! ```
//!
//! Every transition takes the state by value and returns the next state with the messages to
//! send, or the unchanged state with a typed error: a message that does not fit the state is
//! refused, never a panic, and never half-applied.

use std::collections::{BTreeMap, BTreeSet};

use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::kex::{IdentityKey, IdentityRegistry, KexError, KeyShare, PendingExchange, SignedExit};
use super::messages::{AckKind, ToGateway, ToProvider};
use crate::MAX_LANES;
use crate::seed::EdgeSeed;
use crate::superpose::{SuperposeError, local_superposition, resend_superposition};

/// Gateway policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// A resend that would leave fewer live neighbours than this is refused: the corrected
    /// superposition would be masked by too few keys and expose the reading.
    pub min_live_neighbours: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            min_live_neighbours: 2,
        }
    }
}

/// Why a gateway refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The input has no meaning in the current state.
    #[error("gateway {client}: {input} is not accepted while {state}")]
    WrongState {
        client: u32,
        state: &'static str,
        input: &'static str,
    },
    /// The message names another DC net.
    #[error("gateway {client} is in net {expected}, message is for net {got}")]
    WrongNet {
        client: u32,
        expected: u32,
        got: u32,
    },
    /// A key exchange with a client this gateway was not assigned to, or a share with no
    /// exchange in progress.
    #[error("gateway {client}: no key exchange with client {peer} is expected")]
    UnexpectedPeer { client: u32, peer: u32 },
    /// The relayed share or exit failed verification.
    #[error("gateway {client}: {source}")]
    Kex { client: u32, source: KexError },
    /// The message names a client this gateway shares no seed with (for an exit: no real exit
    /// of a neighbour to follow).
    #[error("gateway {client}: client {other} is not a neighbour")]
    NotANeighbour { client: u32, other: u32 },
    /// A signed exit that does not name this gateway with the exchange of the current seed: an
    /// old exit replayed, or one meant for someone else.
    #[error("gateway {client}: exit of client {other} does not name the current shared seed")]
    StaleExit { client: u32, other: u32 },
    /// A reinstatement for a client whose seed is not in the backup.
    #[error("gateway {client}: client {other} is not out")]
    NotOut { client: u32, other: u32 },
    /// A restore listing that disagrees with the seeds this gateway holds.
    #[error("gateway {client}: restore does not match the seed held for client {other}")]
    RestoreMismatch { client: u32, other: u32 },
    /// A round number that was already used (a seed and round pair masks one frame only).
    #[error("gateway {client}: round {round} is not after the last round {last}")]
    RoundReused { client: u32, round: u32, last: u32 },
    /// A correction for a round this gateway did not transmit last.
    #[error("gateway {client}: no transmitted round {round} to correct")]
    UnknownRound { client: u32, round: u32 },
    /// A transmit with no live neighbour would send the reading in clear.
    #[error("gateway {client}: no live neighbour, a frame would carry the reading unmasked")]
    Unmasked { client: u32 },
    /// The reading could not be masked.
    #[error("gateway {client}: {source}")]
    Superpose { client: u32, source: SuperposeError },
}

/// The next state and the messages to send.
#[derive(Debug)]
pub struct Step {
    pub state: GatewayState,
    pub out: Vec<ToProvider>,
}

/// A refused input: the state it left untouched, and why.
#[derive(Debug)]
pub struct Refused {
    pub state: GatewayState,
    pub error: GatewayError,
}

/// The outcome of one input.
pub type Transition = Result<Step, Box<Refused>>;

/// A seed shared with one neighbour, with the exchange that created it.
struct Edge {
    seed: EdgeSeed,
    exchange: u64,
}

/// What a registered gateway carries through its states.
struct Member {
    client: u32,
    identity: IdentityKey,
    config: GatewayConfig,
    dc_net_id: u32,
    live: BTreeMap<u32, Edge>,
    /// Seeds of neighbours that are out after a connection loss, kept to restore the same edges.
    backup: BTreeMap<u32, Edge>,
    /// Exchanges in progress, by peer.
    pending: BTreeMap<u32, PendingExchange>,
    last_round: Option<u32>,
    /// The reading behind the last transmit, needed to resend it; wiped on drop.
    last_reading: Zeroizing<Vec<u64>>,
}

impl Member {
    fn new(client: u32, identity: IdentityKey, config: GatewayConfig, dc_net_id: u32) -> Self {
        Self {
            client,
            identity,
            config,
            dc_net_id,
            live: BTreeMap::new(),
            backup: BTreeMap::new(),
            pending: BTreeMap::new(),
            last_round: None,
            last_reading: Zeroizing::new(Vec::new()),
        }
    }

    fn check_net(&self, got: u32) -> Result<(), GatewayError> {
        if got == self.dc_net_id {
            Ok(())
        } else {
            Err(GatewayError::WrongNet {
                client: self.client,
                expected: self.dc_net_id,
                got,
            })
        }
    }

    fn holds_seed(&self, peer: u32) -> bool {
        self.live.contains_key(&peer) || self.backup.contains_key(&peer)
    }

    fn kex_start(
        &mut self,
        dc_net_id: u32,
        exchange: u64,
        peer: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ToProvider, GatewayError> {
        self.check_net(dc_net_id)?;
        if peer == self.client {
            return Err(GatewayError::UnexpectedPeer {
                client: self.client,
                peer,
            });
        }
        // A newer exchange with the same peer (a retry after a refused share) replaces the old.
        let (pending, share) =
            PendingExchange::start(&self.identity, dc_net_id, exchange, self.client, peer, rng);
        self.pending.insert(peer, pending);
        Ok(ToProvider::KeyShare(share))
    }

    fn key_share(
        &mut self,
        share: &KeyShare,
        registry: &IdentityRegistry,
    ) -> Result<ToProvider, GatewayError> {
        let client = self.client;
        self.check_net(share.dc_net_id)?;
        let identity = registry
            .get(share.from)
            .map_err(|source| GatewayError::Kex { client, source })?;
        let Some(pending) = self.pending.remove(&share.from) else {
            return Err(GatewayError::UnexpectedPeer {
                client,
                peer: share.from,
            });
        };
        match pending.finish(share, identity) {
            Ok(seed) => {
                self.backup.remove(&share.from);
                self.live.insert(
                    share.from,
                    Edge {
                        seed,
                        exchange: share.exchange,
                    },
                );
                Ok(ToProvider::KexDone {
                    dc_net_id: self.dc_net_id,
                    client,
                    exchange: share.exchange,
                    peer: share.from,
                })
            }
            // A share for another exchange is a stray message: keep waiting for the right one.
            Err((pending, source @ KexError::Mismatch { .. })) => {
                self.pending.insert(share.from, pending);
                Err(GatewayError::Kex { client, source })
            }
            // A share that fails verification ends this exchange: its ephemeral key is dropped
            // with `pending` and the provider learns why, so it can open a fresh exchange.
            Err((pending, reason)) => Ok(ToProvider::KexRefused {
                dc_net_id: self.dc_net_id,
                client,
                exchange: pending.exchange(),
                peer: pending.peer(),
                reason,
            }),
        }
    }

    fn exit(
        &mut self,
        exit: &SignedExit,
        registry: &IdentityRegistry,
    ) -> Result<ToProvider, GatewayError> {
        let client = self.client;
        self.check_net(exit.dc_net_id)?;
        let other = exit.client;
        let Some(edge) = self.live.get(&other).or_else(|| self.backup.get(&other)) else {
            return Err(GatewayError::NotANeighbour { client, other });
        };
        let identity = registry
            .get(other)
            .map_err(|source| GatewayError::Kex { client, source })?;
        exit.verify(identity)
            .map_err(|source| GatewayError::Kex { client, source })?;
        if exit.exchange_with(client) != Some(edge.exchange) {
            return Err(GatewayError::StaleExit { client, other });
        }
        self.live.remove(&other);
        self.backup.remove(&other);
        self.pending.remove(&other);
        Ok(ToProvider::Ack {
            dc_net_id: self.dc_net_id,
            client,
            of: AckKind::ExitProcessed { client: other },
        })
    }

    fn reinstate(&mut self, dc_net_id: u32, other: u32) -> Result<ToProvider, GatewayError> {
        self.check_net(dc_net_id)?;
        let Some(edge) = self.backup.remove(&other) else {
            return Err(GatewayError::NotOut {
                client: self.client,
                other,
            });
        };
        self.live.insert(other, edge);
        Ok(ToProvider::Ack {
            dc_net_id,
            client: self.client,
            of: AckKind::Reinstated { client: other },
        })
    }

    fn correction(
        &mut self,
        dc_net_id: u32,
        round: u32,
        missing: &[u32],
        resend: bool,
    ) -> Result<ToProvider, GatewayError> {
        let client = self.client;
        self.check_net(dc_net_id)?;
        if self.last_round != Some(round) {
            return Err(GatewayError::UnknownRound { client, round });
        }
        if let Some(&other) = missing.iter().find(|id| !self.live.contains_key(id)) {
            return Err(GatewayError::NotANeighbour { client, other });
        }
        let missing_set: BTreeSet<u32> = missing.iter().copied().collect();
        let live_after = self.live.len() - missing_set.len();
        let answer = if !resend {
            ToProvider::Ack {
                dc_net_id,
                client,
                of: AckKind::BackedUp { round },
            }
        } else if live_after < self.config.min_live_neighbours {
            ToProvider::ResendRefused {
                dc_net_id,
                client,
                round,
                live: live_after,
                needed: self.config.min_live_neighbours,
            }
        } else {
            let mut lanes = vec![0u64; self.last_reading.len()];
            resend_superposition(
                client,
                round,
                &self.last_reading,
                self.live.iter().map(|(&id, edge)| (id, &edge.seed)),
                |id| missing_set.contains(&id),
                &mut lanes,
            )
            .map_err(|source| GatewayError::Superpose { client, source })?;
            ToProvider::Resend {
                dc_net_id,
                client,
                round,
                lanes,
            }
        };
        // Whatever the answer, the missing clients are out until they re-register.
        for other in missing_set {
            if let Some(edge) = self.live.remove(&other) {
                self.backup.insert(other, edge);
            }
        }
        Ok(answer)
    }

    fn transmit(&mut self, round: u32, reading: &[u64]) -> Result<ToProvider, GatewayError> {
        let client = self.client;
        if let Some(last) = self.last_round.filter(|&last| round <= last) {
            return Err(GatewayError::RoundReused {
                client,
                round,
                last,
            });
        }
        if self.live.is_empty() {
            return Err(GatewayError::Unmasked { client });
        }
        if reading.is_empty() || reading.len() > MAX_LANES {
            return Err(GatewayError::Superpose {
                client,
                source: SuperposeError::Lanes {
                    reading: reading.len(),
                    output: reading.len(),
                },
            });
        }
        let mut lanes = vec![0u64; reading.len()];
        local_superposition(
            client,
            round,
            reading,
            self.live.iter().map(|(&id, edge)| (id, &edge.seed)),
            &mut lanes,
        )
        .map_err(|source| GatewayError::Superpose { client, source })?;
        self.last_round = Some(round);
        self.last_reading = Zeroizing::new(reading.to_vec());
        Ok(ToProvider::Transmit {
            dc_net_id: self.dc_net_id,
            client,
            round,
            lanes,
        })
    }

    fn signed_exit(&self) -> SignedExit {
        let partners = self
            .live
            .iter()
            .chain(&self.backup)
            .map(|(&id, edge)| (id, edge.exchange))
            .collect();
        SignedExit::sign(&self.identity, self.dc_net_id, self.client, partners)
    }

    /// Done joining: every awaited peer has a live seed and no exchange is open.
    fn has_all(&self, awaiting: &BTreeSet<u32>) -> bool {
        self.pending.is_empty() && awaiting.iter().all(|id| self.live.contains_key(id))
    }
}

/// A commissioned gateway that is in no net.
pub struct Unregistered {
    client: u32,
    identity: IdentityKey,
    config: GatewayConfig,
}

/// Registration sent; waiting for the provider's assignment.
pub struct Registering {
    client: u32,
    identity: IdentityKey,
    config: GatewayConfig,
}

/// Assigned to a net; running key exchanges until it holds a seed with every assigned peer.
pub struct Joining {
    member: Member,
    awaiting: BTreeSet<u32>,
}

/// Reconnected after a connection loss; waiting for the provider's restore listing.
pub struct Rejoining {
    member: Member,
}

/// In the net with every seed in place: may transmit.
pub struct Active {
    member: Member,
}

/// In the net with key exchanges in flight (a neighbour joined or left): may not transmit, so
/// no round mixes old and new seeds.
pub struct Relinking {
    member: Member,
}

/// Left the net; every seed is wiped.
pub struct Departed {
    client: u32,
}

/// Every state of a gateway.
pub enum GatewayState {
    Unregistered(Unregistered),
    Registering(Registering),
    Joining(Joining),
    Rejoining(Rejoining),
    Active(Active),
    Relinking(Relinking),
    Departed(Departed),
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayState::{}(client {})", self.name(), self.client())
    }
}

fn step(state: GatewayState, out: Vec<ToProvider>) -> Transition {
    Ok(Step { state, out })
}

fn refuse(state: GatewayState, error: GatewayError) -> Transition {
    Err(Box::new(Refused { state, error }))
}

impl GatewayState {
    /// A commissioned gateway with its identity key, not yet in any net.
    pub fn new(client: u32, identity: IdentityKey, config: GatewayConfig) -> Self {
        Self::Unregistered(Unregistered {
            client,
            identity,
            config,
        })
    }

    /// The state's name, for errors and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unregistered(_) => "unregistered",
            Self::Registering(_) => "registering",
            Self::Joining(_) => "joining",
            Self::Rejoining(_) => "rejoining",
            Self::Active(_) => "active",
            Self::Relinking(_) => "relinking",
            Self::Departed(_) => "departed",
        }
    }

    /// The gateway's client id.
    pub fn client(&self) -> u32 {
        match self {
            Self::Unregistered(s) => s.client,
            Self::Registering(s) => s.client,
            Self::Departed(s) => s.client,
            Self::Joining(Joining { member, .. })
            | Self::Rejoining(Rejoining { member })
            | Self::Active(Active { member })
            | Self::Relinking(Relinking { member }) => member.client,
        }
    }

    fn member(&self) -> Option<&Member> {
        match self {
            Self::Joining(Joining { member, .. })
            | Self::Rejoining(Rejoining { member })
            | Self::Active(Active { member })
            | Self::Relinking(Relinking { member }) => Some(member),
            _ => None,
        }
    }

    /// Neighbours whose seeds are in use, ascending.
    pub fn live_neighbours(&self) -> Vec<u32> {
        self.member()
            .map(|m| m.live.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Neighbours that are out, whose seeds are kept in backup, ascending.
    pub fn backup_neighbours(&self) -> Vec<u32> {
        self.member()
            .map(|m| m.backup.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The live seed shared with `peer` (tests compare both ends).
    pub fn seed_with(&self, peer: u32) -> Option<&EdgeSeed> {
        self.member()?.live.get(&peer).map(|edge| &edge.seed)
    }

    fn wrong(self, input: &'static str) -> Transition {
        let error = GatewayError::WrongState {
            client: self.client(),
            state: self.name(),
            input,
        };
        refuse(self, error)
    }

    /// Local event: ask the provider for a place in a net (notification 1).
    pub fn register(self) -> Transition {
        match self {
            Self::Unregistered(Unregistered {
                client,
                identity,
                config,
            }) => step(
                Self::Registering(Registering {
                    client,
                    identity,
                    config,
                }),
                vec![ToProvider::Register { client }],
            ),
            other => other.wrong("register"),
        }
    }

    /// Local event: the connection to the provider is back after a loss; re-register so the
    /// neighbours restore the backed-up edges (notification 1).
    pub fn reconnect(self) -> Transition {
        match self {
            Self::Active(Active { member }) | Self::Relinking(Relinking { member }) => {
                // Exchanges cut off by the loss are void; the provider opens new ones.
                let mut member = member;
                member.pending.clear();
                let client = member.client;
                step(
                    Self::Rejoining(Rejoining { member }),
                    vec![ToProvider::Register { client }],
                )
            }
            other => other.wrong("reconnect"),
        }
    }

    /// Local event: the metering interval `round` ended with `reading`; send the local
    /// superposition (notification 5).
    pub fn transmit(self, round: u32, reading: &[u64]) -> Transition {
        match self {
            Self::Active(Active { mut member }) => match member.transmit(round, reading) {
                Ok(message) => step(Self::Active(Active { member }), vec![message]),
                Err(error) => refuse(Self::Active(Active { member }), error),
            },
            other => other.wrong("transmit"),
        }
    }

    /// Local event: leave the net (notification 3). Every seed is wiped.
    pub fn leave(self) -> Transition {
        match self {
            Self::Active(Active { member }) => {
                let exit = member.signed_exit();
                let client = member.client;
                step(
                    Self::Departed(Departed { client }),
                    vec![ToProvider::Exit(exit)],
                )
            }
            other => other.wrong("leave"),
        }
    }

    /// A message from the provider.
    pub fn receive(
        self,
        message: &ToGateway,
        registry: &IdentityRegistry,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Transition {
        match self {
            Self::Registering(state) => state.receive(message),
            Self::Joining(state) => state.receive(message, registry, rng),
            Self::Rejoining(state) => state.receive(message, registry),
            Self::Active(state) => state.receive(message, registry, rng),
            Self::Relinking(state) => state.receive(message, registry, rng),
            other @ (Self::Unregistered(_) | Self::Departed(_)) => other.wrong(message.kind()),
        }
    }
}

impl Registering {
    fn receive(self, message: &ToGateway) -> Transition {
        let ToGateway::Assigned {
            dc_net_id,
            neighbours,
        } = message
        else {
            return GatewayState::Registering(self).wrong(message.kind());
        };
        if neighbours.contains(&self.client) {
            let error = GatewayError::UnexpectedPeer {
                client: self.client,
                peer: self.client,
            };
            return refuse(GatewayState::Registering(self), error);
        }
        let member = Member::new(self.client, self.identity, self.config, *dc_net_id);
        Joining {
            member,
            awaiting: neighbours.iter().copied().collect(),
        }
        .settle(Vec::new())
    }
}

impl Joining {
    /// Stays joining while seeds are missing; otherwise announces `joined` and becomes active.
    fn settle(self, mut out: Vec<ToProvider>) -> Transition {
        if self.member.has_all(&self.awaiting) {
            out.push(ToProvider::Joined {
                dc_net_id: self.member.dc_net_id,
                client: self.member.client,
            });
            step(
                GatewayState::Active(Active {
                    member: self.member,
                }),
                out,
            )
        } else {
            step(GatewayState::Joining(self), out)
        }
    }

    fn receive(
        mut self,
        message: &ToGateway,
        registry: &IdentityRegistry,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Transition {
        let result = match message {
            ToGateway::KexStart {
                dc_net_id,
                exchange,
                peer,
            } => {
                if self.awaiting.contains(peer) {
                    self.member.kex_start(*dc_net_id, *exchange, *peer, rng)
                } else {
                    Err(GatewayError::UnexpectedPeer {
                        client: self.member.client,
                        peer: *peer,
                    })
                }
            }
            ToGateway::KeyShare(share) => self.member.key_share(share, registry),
            _ => return GatewayState::Joining(self).wrong(message.kind()),
        };
        match result {
            Ok(answer) => self.settle(vec![answer]),
            Err(error) => refuse(GatewayState::Joining(self), error),
        }
    }
}

impl Rejoining {
    fn receive(mut self, message: &ToGateway, registry: &IdentityRegistry) -> Transition {
        match message {
            // Exits of neighbours that left while this gateway was out, queued by the provider.
            ToGateway::Exit(exit) => match self.member.exit(exit, registry) {
                Ok(ack) => step(GatewayState::Rejoining(self), vec![ack]),
                Err(error) => refuse(GatewayState::Rejoining(self), error),
            },
            ToGateway::Restored {
                dc_net_id,
                live,
                out,
            } => {
                let member = &self.member;
                let client = member.client;
                let check = member.check_net(*dc_net_id).and_then(|()| {
                    let listed: BTreeSet<u32> = live.iter().chain(out).copied().collect();
                    let mismatch = out
                        .iter()
                        .find(|id| !member.holds_seed(**id))
                        .or_else(|| {
                            member
                                .live
                                .keys()
                                .chain(member.backup.keys())
                                .find(|id| !listed.contains(id))
                        })
                        .or_else(|| live.iter().find(|id| **id == client));
                    match mismatch {
                        Some(&other) => Err(GatewayError::RestoreMismatch { client, other }),
                        None => Ok(()),
                    }
                });
                if let Err(error) = check {
                    return refuse(GatewayState::Rejoining(self), error);
                }
                let mut member = self.member;
                for id in live {
                    if let Some(edge) = member.backup.remove(id) {
                        member.live.insert(*id, edge);
                    }
                }
                for id in out {
                    if let Some(edge) = member.live.remove(id) {
                        member.backup.insert(*id, edge);
                    }
                }
                let awaiting = live
                    .iter()
                    .copied()
                    .filter(|id| !member.live.contains_key(id))
                    .collect();
                Joining { member, awaiting }.settle(Vec::new())
            }
            _ => GatewayState::Rejoining(self).wrong(message.kind()),
        }
    }
}

/// Messages an in-net gateway handles the same way whether or not exchanges are in flight.
fn in_net(
    member: &mut Member,
    message: &ToGateway,
    registry: &IdentityRegistry,
    rng: &mut (impl RngCore + CryptoRng),
    rounds_allowed: bool,
) -> Option<Result<ToProvider, GatewayError>> {
    Some(match message {
        ToGateway::KexStart {
            dc_net_id,
            exchange,
            peer,
        } => member.kex_start(*dc_net_id, *exchange, *peer, rng),
        ToGateway::KeyShare(share) => member.key_share(share, registry),
        ToGateway::Exit(exit) => member.exit(exit, registry),
        ToGateway::Reinstate { dc_net_id, client } => member.reinstate(*dc_net_id, *client),
        ToGateway::Correction {
            dc_net_id,
            round,
            missing,
            resend,
        } if rounds_allowed => member.correction(*dc_net_id, *round, missing, *resend),
        _ => return None,
    })
}

impl Active {
    fn receive(
        mut self,
        message: &ToGateway,
        registry: &IdentityRegistry,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Transition {
        match in_net(&mut self.member, message, registry, rng, true) {
            None => GatewayState::Active(self).wrong(message.kind()),
            Some(Err(error)) => refuse(GatewayState::Active(self), error),
            Some(Ok(answer)) => Relinking {
                member: self.member,
            }
            .settle(vec![answer]),
        }
    }
}

impl Relinking {
    /// Back to active once no exchange is in flight.
    fn settle(self, out: Vec<ToProvider>) -> Transition {
        if self.member.pending.is_empty() {
            step(
                GatewayState::Active(Active {
                    member: self.member,
                }),
                out,
            )
        } else {
            step(GatewayState::Relinking(self), out)
        }
    }

    fn receive(
        mut self,
        message: &ToGateway,
        registry: &IdentityRegistry,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Transition {
        match in_net(&mut self.member, message, registry, rng, false) {
            None => GatewayState::Relinking(self).wrong(message.kind()),
            Some(Err(error)) => refuse(GatewayState::Relinking(self), error),
            Some(Ok(answer)) => self.settle(vec![answer]),
        }
    }
}
