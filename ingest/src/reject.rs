//! Why a frame was not used, and the tallies the provider reports (DESIGN §5).

use std::collections::BTreeMap;

use crate::frame::FrameError;

/// Every reason a frame (or a stretch of bytes in a log) is not used for a sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The first two bytes are not "DC".
    BadMagic,
    /// An unknown frame version.
    BadVersion,
    /// A lane count outside 1..=32 or different from the log's.
    BadLanes,
    /// Flag bits other than the transmission bit, or reserved bytes, are set.
    ReservedBits,
    /// The CRC-32C does not match.
    CrcMismatch,
    /// A notification code outside 1..=5.
    UnknownNotification,
    /// A partial frame at the end of a log.
    Truncated,
    /// Bytes between frames too few to be a frame.
    StrayBytes,
    /// A `register`, `joined` or `exit` frame: control traffic that carries no reading.
    ControlFrame,
    /// A transmit frame without the transmission bit.
    NoTransmissionBit,
    /// The frame's DC net is not in `graph.csv`.
    UnknownNet,
    /// The client is not on its net's roster.
    UnknownClient,
    /// Another frame with the same net, round, client and notification was kept.
    Duplicate,
    /// A resend from a client none of whose neighbours was missing.
    ResendWithoutMissingNeighbour,
    /// A resend from a client that sent no transmit frame: there is nothing for it to correct.
    ResendWithoutTransmit,
    /// A transmit frame stamped after its round's deadline.
    Late,
}

impl RejectReason {
    /// Every reason, in report order.
    pub const ALL: [RejectReason; 16] = [
        Self::BadMagic,
        Self::BadVersion,
        Self::BadLanes,
        Self::ReservedBits,
        Self::CrcMismatch,
        Self::UnknownNotification,
        Self::Truncated,
        Self::StrayBytes,
        Self::ControlFrame,
        Self::NoTransmissionBit,
        Self::UnknownNet,
        Self::UnknownClient,
        Self::Duplicate,
        Self::ResendWithoutMissingNeighbour,
        Self::ResendWithoutTransmit,
        Self::Late,
    ];

    /// The stable kebab-case name used in reports and reject files.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadMagic => "bad-magic",
            Self::BadVersion => "bad-version",
            Self::BadLanes => "bad-lanes",
            Self::ReservedBits => "reserved-bits",
            Self::CrcMismatch => "crc-mismatch",
            Self::UnknownNotification => "unknown-notification",
            Self::Truncated => "truncated",
            Self::StrayBytes => "stray-bytes",
            Self::ControlFrame => "control-frame",
            Self::NoTransmissionBit => "no-transmission-bit",
            Self::UnknownNet => "unknown-net",
            Self::UnknownClient => "unknown-client",
            Self::Duplicate => "duplicate",
            Self::ResendWithoutMissingNeighbour => "resend-without-missing-neighbour",
            Self::ResendWithoutTransmit => "resend-without-transmit",
            Self::Late => "late",
        }
    }

    /// A short explanation for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BadMagic => "frame does not start with \"DC\"",
            Self::BadVersion => "unknown frame version",
            Self::BadLanes => "lane count differs from the log's",
            Self::ReservedBits => "reserved flag bits or bytes set",
            Self::CrcMismatch => "CRC-32C mismatch",
            Self::UnknownNotification => "notification code outside 1..=5",
            Self::Truncated => "partial frame at the end of the log",
            Self::StrayBytes => "stray bytes between frames",
            Self::ControlFrame => "register/joined/exit frame carries no reading",
            Self::NoTransmissionBit => "transmit frame without the transmission bit",
            Self::UnknownNet => "DC net not in graph.csv",
            Self::UnknownClient => "client not on the net's roster",
            Self::Duplicate => "same net, round, client and notification seen before",
            Self::ResendWithoutMissingNeighbour => "resend from a client with no missing neighbour",
            Self::ResendWithoutTransmit => "resend from a client that sent no transmit frame",
            Self::Late => "transmit frame after the round's deadline",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<FrameError> for RejectReason {
    fn from(error: FrameError) -> Self {
        match error {
            FrameError::Truncated { .. } => Self::Truncated,
            FrameError::StrayBytes(_) => Self::StrayBytes,
            FrameError::BadMagic(_) => Self::BadMagic,
            FrameError::BadVersion(_) => Self::BadVersion,
            FrameError::BadLanes { .. } => Self::BadLanes,
            FrameError::ReservedBits { .. } => Self::ReservedBits,
            FrameError::UnknownNotification(_) => Self::UnknownNotification,
            FrameError::CrcMismatch { .. } => Self::CrcMismatch,
        }
    }
}

/// Where a rejected frame sits: which input file and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameSource {
    /// Index of the log in the list of inputs.
    pub file: u32,
    /// Byte offset of the frame in that log.
    pub offset: u64,
}

/// One rejected frame or stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejected {
    /// Where it is.
    pub source: FrameSource,
    /// Why it was not used.
    pub reason: RejectReason,
}

/// Counts of rejected frames by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectCounts {
    counts: BTreeMap<RejectReason, u64>,
}

impl RejectCounts {
    /// Counts one more frame rejected for `reason`.
    pub fn add(&mut self, reason: RejectReason) {
        *self.counts.entry(reason).or_default() += 1;
    }

    /// Counts `n` more frames rejected for `reason`.
    pub fn add_n(&mut self, reason: RejectReason, n: u64) {
        if n > 0 {
            *self.counts.entry(reason).or_default() += n;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &RejectCounts) {
        for (&reason, &n) in &other.counts {
            *self.counts.entry(reason).or_default() += n;
        }
    }

    /// Frames rejected for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    /// All rejected frames.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Non-zero counts in report order.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        self.counts
            .iter()
            .map(|(&r, &n)| (r, n))
            .filter(|&(_, n)| n > 0)
    }
}
