//! The provider's aggregation rules (DESIGN §5), in their straightforward form.
//!
//! For each (net, round): the transmit frames of roster clients, one per client; the missing set
//! `M = roster − senders`; every present neighbour of a client in `M` must have sent a resend,
//! which replaces its transmit frame; then the wrapping lane-wise sum. Every frame offered is
//! either used or rejected with a [`RejectReason`].

use std::collections::{BTreeMap, BTreeSet};

use engine::{KeyGraph, add_lanes};

use crate::frame::{FrameView, Notification};
use crate::log::Scanned;
use crate::reject::{FrameSource, RejectCounts, RejectReason, Rejected};
use crate::spill::RejectList;

/// The key graph of every known net, by `dc_net_id`.
pub type Nets = BTreeMap<u32, KeyGraph>;

/// The length of a round unless configured otherwise: 15 minutes, in milliseconds.
pub const DEFAULT_PERIOD_MS: u64 = 15 * 60 * 1000;

/// Provider policy for releasing sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateOptions {
    /// A round with fewer present clients is withheld (DESIGN §5). At least 2.
    pub min_participants: usize,
    /// A resending client left with fewer live neighbours than this is flagged as exposed.
    pub min_live_neighbours: usize,
    /// Start of round 0, ms since the Unix epoch: round `r` spans
    /// `[epoch + r·period, epoch + (r+1)·period)`.
    pub epoch_ms: u64,
    /// Length of a round in ms (at least 1).
    pub period_ms: u64,
    /// Grace after a round's end: a transmit frame stamped later than `end + deadline` is
    /// rejected as late and its client counts as missing. `None` accepts any timestamp.
    pub deadline_ms: Option<u64>,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            min_participants: 2,
            min_live_neighbours: 2,
            epoch_ms: 0,
            period_ms: DEFAULT_PERIOD_MS,
            deadline_ms: None,
        }
    }
}

impl AggregateOptions {
    /// The last timestamp (ms) a transmit frame of `round` may carry, or `None` without a
    /// deadline. Saturates at `u64::MAX` instead of wrapping.
    pub fn round_deadline(&self, round: u32) -> Option<u64> {
        let grace = self.deadline_ms?;
        let end = u128::from(self.epoch_ms)
            + (u128::from(round) + 1) * u128::from(self.period_ms)
            + u128::from(grace);
        Some(u64::try_from(end).unwrap_or(u64::MAX))
    }

    /// Whether a transmit frame of `round` stamped `timestamp_ms` is late.
    pub fn is_late(&self, round: u32, timestamp_ms: u64) -> bool {
        self.round_deadline(round)
            .is_some_and(|deadline| timestamp_ms > deadline)
    }
}

/// The outcome of one (net, round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoundStatus {
    /// The sum is released.
    Ok,
    /// A needed resend is missing: no sum.
    Unrecoverable,
    /// Fewer present clients than the minimum: no sum.
    Withheld,
}

impl RoundStatus {
    /// The name used in `global.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unrecoverable => "unrecoverable",
            Self::Withheld => "withheld",
        }
    }

    /// Parses a `global.csv` status.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Ok, Self::Unrecoverable, Self::Withheld]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl std::fmt::Display for RoundStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of `global.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundResult {
    /// The net.
    pub dc_net_id: u32,
    /// The round.
    pub round: u32,
    /// Roster size.
    pub expected: usize,
    /// Clients that sent a transmit frame.
    pub present: usize,
    /// Resend frames used.
    pub resent: usize,
    /// Whether a sum is released.
    pub status: RoundStatus,
    /// The released sum, lane by lane; `None` unless the status is `Ok`.
    pub sum: Option<Vec<u64>>,
    /// Resending clients left with fewer live neighbours than the policy asks for.
    pub exposed: Vec<u32>,
}

/// Everything an aggregation found.
#[derive(Debug, Clone, Default)]
pub struct AggregateReport {
    /// One result per (net, round) seen, ordered by net then round.
    pub rounds: Vec<RoundResult>,
    /// Rejected frames by reason.
    pub counts: RejectCounts,
    /// Each rejected frame with its position, in ascending (file, offset) order (empty unless
    /// rejects were listed). The columnar engine keeps a long list in temporary files.
    pub rejects: RejectList,
    /// Frames that went into a round (transmit and resend frames kept).
    pub frames_kept: u64,
    /// Rounds settled early to stay within the memory budget that later received frames and
    /// were aggregated again from their byte ranges (columnar engine only). Results do not
    /// depend on it; time does: many means the logs scatter rounds more widely than the
    /// budget holds.
    pub rounds_reread: u64,
}

#[derive(Debug, Clone)]
struct Kept {
    timestamp_ms: u64,
    lanes: Vec<u64>,
    source: FrameSource,
}

#[derive(Debug, Default)]
struct RoundFrames {
    transmit: BTreeMap<u32, Kept>,
    resend: BTreeMap<u32, Kept>,
}

/// Collects frames and applies the DESIGN §5 rules when finished.
pub struct Aggregator<'n> {
    nets: &'n Nets,
    lanes: usize,
    options: AggregateOptions,
    rounds: BTreeMap<(u32, u32), RoundFrames>,
    counts: RejectCounts,
    rejects: Vec<Rejected>,
}

impl<'n> Aggregator<'n> {
    /// An aggregator for frames of `lanes` lanes of the nets in `nets`.
    pub fn new(nets: &'n Nets, lanes: usize, options: AggregateOptions) -> Self {
        Self {
            nets,
            lanes,
            options,
            rounds: BTreeMap::new(),
            counts: RejectCounts::default(),
            rejects: Vec::new(),
        }
    }

    /// Records a rejected frame.
    pub fn reject(&mut self, reason: RejectReason, source: FrameSource) {
        self.counts.add(reason);
        self.rejects.push(Rejected { source, reason });
    }

    /// Offers one step of a log scan from input file `file`.
    pub fn add_scanned(&mut self, file: u32, scanned: &Scanned<'_>) {
        let source = FrameSource {
            file,
            offset: scanned.offset,
        };
        match scanned.frame {
            Ok(frame) => self.add_frame(&frame, source),
            Err(error) => self.reject(error.into(), source),
        }
    }

    /// Offers one valid frame.
    pub fn add_frame(&mut self, frame: &FrameView<'_>, source: FrameSource) {
        if frame.lane_count() != self.lanes {
            return self.reject(RejectReason::BadLanes, source);
        }
        let notification = frame.notification();
        if !matches!(notification, Notification::Transmit | Notification::Resend) {
            return self.reject(RejectReason::ControlFrame, source);
        }
        if notification == Notification::Transmit && !frame.transmission() {
            return self.reject(RejectReason::NoTransmissionBit, source);
        }
        let Some(graph) = self.nets.get(&frame.dc_net_id()) else {
            return self.reject(RejectReason::UnknownNet, source);
        };
        if graph.index_of(frame.client_id()).is_none() {
            return self.reject(RejectReason::UnknownClient, source);
        }
        if notification == Notification::Transmit
            && self.options.is_late(frame.round(), frame.timestamp_ms())
        {
            // Not used, so the client counts as missing and its neighbours must resend.
            return self.reject(RejectReason::Late, source);
        }
        let round = self
            .rounds
            .entry((frame.dc_net_id(), frame.round()))
            .or_default();
        let slot = match notification {
            Notification::Transmit => &mut round.transmit,
            _ => &mut round.resend,
        };
        let candidate = Kept {
            timestamp_ms: frame.timestamp_ms(),
            lanes: frame.lanes().collect(),
            source,
        };
        match slot.entry(frame.client_id()) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(candidate);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                // Keep the earlier frame (then the smaller data) so the choice does not depend on
                // the order in which logs are read.
                let kept = entry.get_mut();
                let loser = if (candidate.timestamp_ms, &candidate.lanes)
                    < (kept.timestamp_ms, &kept.lanes)
                {
                    std::mem::replace(kept, candidate)
                } else {
                    candidate
                };
                self.reject(RejectReason::Duplicate, loser.source);
            }
        }
    }

    /// Applies the rules to every (net, round) seen.
    pub fn finish(mut self) -> AggregateReport {
        let mut report = AggregateReport::default();
        let rounds = std::mem::take(&mut self.rounds);
        for ((dc_net_id, round), frames) in rounds {
            // Frames were only kept for known nets.
            let Some(graph) = self.nets.get(&dc_net_id) else {
                continue;
            };
            let result = self.settle(graph, round, frames, &mut report.frames_kept);
            report.rounds.push(result);
        }
        report.counts = self.counts;
        report.rejects = RejectList::from(self.rejects);
        report
    }

    fn settle(
        &mut self,
        graph: &KeyGraph,
        round: u32,
        frames: RoundFrames,
        kept: &mut u64,
    ) -> RoundResult {
        let present: &BTreeMap<u32, Kept> = &frames.transmit;
        let missing: BTreeSet<u32> = graph
            .clients()
            .iter()
            .copied()
            .filter(|c| !present.contains_key(c))
            .collect();
        // Present clients with at least one missing neighbour must resend.
        let needs_resend: BTreeSet<u32> = present
            .keys()
            .copied()
            .filter(|&c| {
                graph
                    .neighbours(c)
                    .is_some_and(|ns| ns.iter().any(|n| missing.contains(n)))
            })
            .collect();
        let mut resent = 0;
        for (&client, frame) in &frames.resend {
            if needs_resend.contains(&client) {
                resent += 1;
            } else if present.contains_key(&client) {
                self.reject(RejectReason::ResendWithoutMissingNeighbour, frame.source);
            } else {
                self.reject(RejectReason::ResendWithoutTransmit, frame.source);
            }
        }
        *kept += (present.len() + resent) as u64;
        let exposed = needs_resend
            .iter()
            .copied()
            .filter(|&c| {
                let live = graph
                    .neighbours(c)
                    .map_or(0, |ns| ns.iter().filter(|n| !missing.contains(n)).count());
                live < self.options.min_live_neighbours
            })
            .collect();
        let status = if present.len() < self.options.min_participants {
            RoundStatus::Withheld
        } else if needs_resend.iter().any(|c| !frames.resend.contains_key(c)) {
            RoundStatus::Unrecoverable
        } else {
            RoundStatus::Ok
        };
        let sum = (status == RoundStatus::Ok).then(|| {
            let mut sum = vec![0u64; self.lanes];
            for (client, frame) in present {
                let used = if needs_resend.contains(client) {
                    &frames.resend[client]
                } else {
                    frame
                };
                add_lanes(&mut sum, &used.lanes);
            }
            sum
        });
        RoundResult {
            dc_net_id: graph.dc_net_id(),
            round,
            expected: graph.len(),
            present: present.len(),
            resent,
            status,
            sum,
            exposed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn nets() -> Nets {
        // A 4-cycle 1-2-3-4-1 in net 9.
        let graph = KeyGraph::from_edges(9, [(1, 2), (2, 3), (3, 4), (1, 4)]).unwrap();
        BTreeMap::from([(9, graph)])
    }

    fn frame(notification: Notification, client: u32, value: u64) -> Vec<u8> {
        Frame {
            notification,
            transmission: true,
            dc_net_id: 9,
            client_id: client,
            round: 1,
            timestamp_ms: 0,
            lanes: vec![value],
        }
        .to_bytes()
        .unwrap()
    }

    fn offer(agg: &mut Aggregator<'_>, bytes: &[u8], offset: u64) {
        let view = FrameView::parse(bytes, 1).unwrap();
        agg.add_frame(&view, FrameSource { file: 0, offset });
    }

    #[test]
    fn resends_replace_transmits_of_neighbours_of_missing_clients() {
        let nets = nets();
        let mut agg = Aggregator::new(&nets, 1, AggregateOptions::default());
        // Client 4 is missing; its neighbours 1 and 3 resend. Values are arbitrary "masked" data:
        // the rule is about which frames are summed, hand-computed as 10 + 30 + 2 = 42.
        for (n, c, v) in [
            (Notification::Transmit, 1, 1000),
            (Notification::Transmit, 2, 2),
            (Notification::Transmit, 3, 3000),
            (Notification::Resend, 1, 10),
            (Notification::Resend, 3, 30),
        ] {
            offer(&mut agg, &frame(n, c, v), u64::from(c));
        }
        let report = agg.finish();
        let row = &report.rounds[0];
        assert_eq!(
            (row.expected, row.present, row.resent, row.status),
            (4, 3, 2, RoundStatus::Ok)
        );
        assert_eq!(row.sum, Some(vec![42]));
        // 1 and 3 each keep one live neighbour (2), below the default of 2.
        assert_eq!(row.exposed, vec![1, 3]);
        assert_eq!(report.counts.total(), 0);
    }

    #[test]
    fn missing_resend_is_unrecoverable_and_stray_resends_are_rejected() {
        let nets = nets();
        let mut agg = Aggregator::new(&nets, 1, AggregateOptions::default());
        for (n, c) in [
            (Notification::Transmit, 1),
            (Notification::Transmit, 2),
            (Notification::Transmit, 3),
            (Notification::Resend, 1),
            (Notification::Resend, 2),
            (Notification::Resend, 4),
        ] {
            offer(&mut agg, &frame(n, c, 5), u64::from(c));
        }
        let report = agg.finish();
        assert_eq!(report.rounds[0].status, RoundStatus::Unrecoverable);
        assert_eq!(report.rounds[0].sum, None);
        assert_eq!(
            report
                .counts
                .get(RejectReason::ResendWithoutMissingNeighbour),
            1
        );
        assert_eq!(report.counts.get(RejectReason::ResendWithoutTransmit), 1);
    }

    #[test]
    fn too_few_present_is_withheld() {
        let nets = nets();
        let options = AggregateOptions {
            min_participants: 3,
            ..Default::default()
        };
        let mut agg = Aggregator::new(&nets, 1, options);
        offer(&mut agg, &frame(Notification::Transmit, 1, 5), 0);
        offer(&mut agg, &frame(Notification::Transmit, 3, 5), 1);
        offer(&mut agg, &frame(Notification::Resend, 1, 5), 2);
        offer(&mut agg, &frame(Notification::Resend, 3, 5), 3);
        let report = agg.finish();
        assert_eq!(report.rounds[0].status, RoundStatus::Withheld);
        assert_eq!(report.rounds[0].sum, None);
    }

    #[test]
    fn unknown_nets_clients_control_frames_and_duplicates_are_counted() {
        let nets = nets();
        let mut agg = Aggregator::new(&nets, 1, AggregateOptions::default());
        let mut other_net = FrameView::parse(&frame(Notification::Transmit, 1, 1), 1)
            .unwrap()
            .to_frame();
        other_net.dc_net_id = 10;
        offer(&mut agg, &other_net.to_bytes().unwrap(), 0);
        offer(&mut agg, &frame(Notification::Transmit, 77, 1), 1);
        offer(&mut agg, &frame(Notification::Register, 1, 1), 2);
        offer(&mut agg, &frame(Notification::Transmit, 1, 1), 3);
        offer(&mut agg, &frame(Notification::Transmit, 1, 1), 4);
        let mut no_bit = FrameView::parse(&frame(Notification::Transmit, 2, 1), 1)
            .unwrap()
            .to_frame();
        no_bit.transmission = false;
        offer(&mut agg, &no_bit.to_bytes().unwrap(), 5);
        let report = agg.finish();
        for reason in [
            RejectReason::UnknownNet,
            RejectReason::UnknownClient,
            RejectReason::ControlFrame,
            RejectReason::Duplicate,
            RejectReason::NoTransmissionBit,
        ] {
            assert_eq!(report.counts.get(reason), 1, "{reason}");
        }
        assert_eq!(
            report
                .rejects
                .in_memory()
                .unwrap()
                .iter()
                .find(|r| r.reason == RejectReason::Duplicate)
                .unwrap()
                .source
                .offset,
            4
        );
    }
}
