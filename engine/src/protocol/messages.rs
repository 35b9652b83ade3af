//! The typed messages gateways and provider exchange (DESIGN §1).
//!
//! Gateways talk only to the provider; key shares and exits between gateways travel through it
//! as signed payloads. Messages that correspond to a frame notification say which one, so a
//! transport can carry them in frame v1.

use super::kex::{KexError, KeyShare, SignedExit};

pub use crate::Notification;

/// A message from the provider to one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToGateway {
    /// Answer to a first registration: the net and the neighbours the provider drew at random.
    Assigned {
        dc_net_id: u32,
        neighbours: Vec<u32>,
    },
    /// Answer to a re-registration after a connection loss: the neighbours that are live now
    /// (restored from backup, or new partners to exchange keys with) and those still out.
    Restored {
        dc_net_id: u32,
        live: Vec<u32>,
        out: Vec<u32>,
    },
    /// The relay tunnel for one key exchange with `peer` is open: send a signed share.
    KexStart {
        dc_net_id: u32,
        exchange: u64,
        peer: u32,
    },
    /// The peer's share, relayed.
    KeyShare(KeyShare),
    /// Notification 3: a neighbour left; its own signed exit, relayed.
    Exit(SignedExit),
    /// A neighbour that was out re-registered: use its backed-up seed again.
    Reinstate { dc_net_id: u32, client: u32 },
    /// Notification 4: the `missing` neighbours sent nothing in `round`; they are out until
    /// they re-register. With `resend`, send the round again without their keys; without it
    /// (the round is withheld), only back their seeds up and acknowledge.
    Correction {
        dc_net_id: u32,
        round: u32,
        missing: Vec<u32>,
        resend: bool,
    },
}

impl ToGateway {
    /// The frame notification this message travels as, if any.
    pub fn notification(&self) -> Option<Notification> {
        match self {
            Self::Exit(_) => Some(Notification::Exit),
            Self::Correction { .. } => Some(Notification::Resend),
            _ => None,
        }
    }

    /// A short name for errors and audit entries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Assigned { .. } => "assigned",
            Self::Restored { .. } => "restored",
            Self::KexStart { .. } => "kex-start",
            Self::KeyShare(_) => "key-share",
            Self::Exit(_) => "exit",
            Self::Reinstate { .. } => "reinstate",
            Self::Correction { .. } => "correction",
        }
    }
}

/// What an acknowledgement confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AckKind {
    /// The seed shared with the exiting client is dropped.
    ExitProcessed { client: u32 },
    /// The backed-up seed of a returning client is in use again.
    Reinstated { client: u32 },
    /// The missing clients' seeds are backed up (correction without resend).
    BackedUp { round: u32 },
}

/// A message from a gateway to the provider. `client` is the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToProvider {
    /// Notification 1: wants to join (or, after a connection loss, rejoin) a net.
    Register { client: u32 },
    /// Notification 2: every assigned key exchange is done; ready for the next round.
    Joined { dc_net_id: u32, client: u32 },
    /// Notification 3: the sender leaves, naming its partners (signed).
    Exit(SignedExit),
    /// Notification 4: corrected local superposition for `round`.
    Resend {
        dc_net_id: u32,
        client: u32,
        round: u32,
        lanes: Vec<u64>,
    },
    /// Notification 5: the local superposition of `round`.
    Transmit {
        dc_net_id: u32,
        client: u32,
        round: u32,
        lanes: Vec<u64>,
    },
    /// The sender's share for the peer, to be relayed.
    KeyShare(KeyShare),
    /// The exchange finished: the sender holds the seed shared with `peer`.
    KexDone {
        dc_net_id: u32,
        client: u32,
        exchange: u64,
        peer: u32,
    },
    /// The peer's share did not verify: the sender derived no seed.
    KexRefused {
        dc_net_id: u32,
        client: u32,
        exchange: u64,
        peer: u32,
        reason: KexError,
    },
    /// Confirms a notification that needs no other answer.
    Ack {
        dc_net_id: u32,
        client: u32,
        of: AckKind,
    },
    /// The sender will not resend `round`: with the missing neighbours' keys removed it would
    /// keep only `live` live neighbours, fewer than its guard of `needed`.
    ResendRefused {
        dc_net_id: u32,
        client: u32,
        round: u32,
        live: usize,
        needed: usize,
    },
}

impl ToProvider {
    /// The frame notification this message travels as, if any.
    pub fn notification(&self) -> Option<Notification> {
        match self {
            Self::Register { .. } => Some(Notification::Register),
            Self::Joined { .. } => Some(Notification::Joined),
            Self::Exit(_) => Some(Notification::Exit),
            Self::Resend { .. } => Some(Notification::Resend),
            Self::Transmit { .. } => Some(Notification::Transmit),
            _ => None,
        }
    }

    /// The sending client.
    pub fn sender(&self) -> u32 {
        match self {
            Self::Register { client }
            | Self::Joined { client, .. }
            | Self::Resend { client, .. }
            | Self::Transmit { client, .. }
            | Self::KexDone { client, .. }
            | Self::KexRefused { client, .. }
            | Self::Ack { client, .. }
            | Self::ResendRefused { client, .. } => *client,
            Self::Exit(exit) => exit.client,
            Self::KeyShare(share) => share.from,
        }
    }

    /// A short name for errors and audit entries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::Joined { .. } => "joined",
            Self::Exit(_) => "exit",
            Self::Resend { .. } => "resend",
            Self::Transmit { .. } => "transmit",
            Self::KeyShare(_) => "key-share",
            Self::KexDone { .. } => "kex-done",
            Self::KexRefused { .. } => "kex-refused",
            Self::Ack { .. } => "ack",
            Self::ResendRefused { .. } => "resend-refused",
        }
    }
}

/// A provider message with its addressee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub to: u32,
    pub message: ToGateway,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_codes_follow_design_table() {
        let expected = [
            (1, Notification::Register),
            (2, Notification::Joined),
            (3, Notification::Exit),
            (4, Notification::Resend),
            (5, Notification::Transmit),
        ];
        for (code, notification) in expected {
            assert_eq!(notification.code(), code);
            assert_eq!(Notification::from_code(code), Some(notification));
        }
        assert_eq!(Notification::from_code(0), None);
        assert_eq!(Notification::from_code(6), None);
    }
}
