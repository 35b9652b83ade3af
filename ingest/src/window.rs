//! Logs whose nets are interleaved (a collector writes frames as they arrive), read a window at
//! a time and partitioned by net before they are decoded.
//!
//! Aggregation is fast when it meets many frames of one (net, round) in a row: the group's
//! arrays, the net's roster and its index then stay in cache for the whole run. In a log of
//! 1,000 interleaved nets a morsel of 64K frames holds about 65 frames of each net, and every
//! one of those short runs pays for the cold lines of its group and roster. So a window of
//! such a log (many morsels long) is first only checked, exactly as the morsel reader checks
//! frames, keeping each accepted frame's offset and a bucket from its net; the offsets are
//! then put in bucket order (a counting sort: linear, stable, so a net's frames keep their
//! log order) and the frames decoded from the log in that order, a cache-sized batch at a time
//! ([`crate::columnar::FrameColumns::gather_frames`]). Each net's frames of the window then
//! come together, and a window holds ten to a hundred times as many of them as a morsel,
//! for ten bytes of memory a frame instead of a decoded morsel's forty.

use crate::columnar::{FrameSink, ScanReject, read_into};
use crate::frame::{FrameView, RawHeader};
use crate::log::LogHeader;

/// Buckets the frames of a window are partitioned into, by a hash of their net. More buckets
/// than a window usually has nets, so that most buckets hold one net; the counts (16 KiB) stay
/// in L1 while the window is partitioned.
const BUCKET_BITS: u32 = 12;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// The bucket of frames of net `net`: the top bits of a multiplicative hash.
fn bucket_of(net: u32) -> u16 {
    (u64::from(net).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS)) as u16
}

/// The frames of one window that the morsel reader accepted: where each starts in the log and
/// its net's bucket, in log order. Its buffers are kept from window to window.
#[derive(Debug, Default)]
pub struct WindowFrames {
    offsets: Vec<u64>,
    buckets: Vec<u16>,
}

impl WindowFrames {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames accepted.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no frame was accepted.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Forgets the frames, keeping the buffers.
    pub fn clear(&mut self) {
        self.offsets.clear();
        self.buckets.clear();
    }

    /// The frames' offsets in bucket order, into `order` (emptied first): the frames of one
    /// net all in one stretch, each net's frames in log order.
    pub fn partition(&self, order: &mut Vec<u64>) {
        let mut starts = vec![0u32; BUCKETS + 1];
        for &bucket in &self.buckets {
            starts[usize::from(bucket) + 1] += 1;
        }
        for b in 1..=BUCKETS {
            starts[b] += starts[b - 1];
        }
        order.clear();
        order.resize(self.offsets.len(), 0);
        // A window holds far fewer than u32::MAX frames (the pipeline's windows are millions).
        for (&offset, &bucket) in self.offsets.iter().zip(&self.buckets) {
            let next = &mut starts[usize::from(bucket)];
            order[*next as usize] = offset;
            *next += 1;
        }
    }
}

impl FrameSink for WindowFrames {
    fn reserve(&mut self, frames: usize) {
        self.offsets.reserve(frames);
        self.buckets.reserve(frames);
    }

    fn push_block(&mut self, frames: &[u8], frame_len: usize, offset: u64, _transmission: u64) {
        let mut at = offset;
        for frame in frames.chunks_exact(frame_len) {
            self.offsets.push(at);
            self.buckets
                .push(bucket_of(RawHeader::of(frame).dc_net_id()));
            at += frame_len as u64;
        }
    }

    fn push(&mut self, frame: &FrameView<'_>, offset: u64) {
        self.offsets.push(offset);
        self.buckets.push(bucket_of(frame.dc_net_id()));
    }
}

/// Checks the window of `bytes` (a whole log with header `header`) from `start` (between
/// frames) to the first position at or after `end` between frames, as
/// [`crate::columnar::read_morsel_ahead`] would read it as a morsel: the accepted frames go
/// into `frames` (cleared first), rejected stretches into `rejects`. Returns where reading
/// stopped.
#[allow(clippy::too_many_arguments)]
pub fn read_window(
    bytes: &[u8],
    header: LogHeader,
    start: usize,
    end: usize,
    read_ahead: usize,
    frames: &mut WindowFrames,
    rejects: &mut Vec<ScanReject>,
) -> usize {
    frames.clear();
    read_into(bytes, header, start, end, read_ahead, frames, rejects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::{FrameColumns, read_morsel};
    use crate::frame::{Frame, Notification};
    use crate::log::LogWriter;
    use proptest::prelude::*;

    fn log(frames: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut writer = LogWriter::new(Vec::new(), 1, 0).unwrap();
        for &(net, client, round) in frames {
            writer
                .write_frame(&Frame {
                    notification: Notification::Transmit,
                    transmission: client % 3 != 0,
                    dc_net_id: net,
                    client_id: client,
                    round,
                    timestamp_ms: u64::from(client) * 7,
                    lanes: vec![u64::from(net) << 32 | u64::from(client)],
                })
                .unwrap();
        }
        writer.finish().unwrap()
    }

    proptest! {
        /// The window path gives the morsel reader's frames, rejects and stop, with each net's
        /// frames together and in log order: decoded in bucket order, the rows are the morsel
        /// reader's rows stably sorted by bucket.
        #[test]
        fn a_partitioned_window_holds_the_morsel_readers_frames_by_net(
            frames in prop::collection::vec((0u32..40, 0u32..1000, 0u32..3), 0..400),
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = log(&frames);
            if bytes.len() > 64 {
                for (at, value) in damage {
                    let at = 64 + at.index(bytes.len() - 64);
                    bytes[at] ^= value | 1;
                }
            }
            let header = LogHeader::parse(&bytes).unwrap();
            let end = bytes.len() / 2;
            let mut columns = FrameColumns::new(1, 0);
            let mut want_rejects = Vec::new();
            let want_stop = read_morsel(&bytes, header, 64, end, &mut columns, &mut want_rejects);
            let want = columns.finish(0).unwrap();

            let mut window = WindowFrames::new();
            let mut rejects = Vec::new();
            let stop = read_window(&bytes, header, 64, end, 0, &mut window, &mut rejects);
            prop_assert_eq!(stop, want_stop);
            prop_assert_eq!(rejects, want_rejects);
            prop_assert_eq!(window.len(), want.len());
            let mut order = Vec::new();
            window.partition(&mut order);
            let mut gathered = FrameColumns::new(1, 0);
            gathered.gather_frames(&bytes, header.frame_len(), &order);
            let got = gathered.finish(0).unwrap();

            let mut rows: Vec<usize> = (0..want.len()).collect();
            rows.sort_by_key(|&row| bucket_of(want.dc_net_id()[row]));
            let pick = |batch: &crate::columnar::FrameBatch, row: usize| (
                batch.dc_net_id()[row],
                batch.client_id()[row],
                batch.round()[row],
                batch.notification()[row],
                batch.transmission().value(row),
                batch.timestamp_ms()[row],
                batch.lane(0)[row],
                batch.offsets[row],
            );
            for (k, &row) in rows.iter().enumerate() {
                prop_assert_eq!(pick(&got, k), pick(&want, row));
            }
        }
    }

    #[test]
    fn nets_land_in_their_own_stretches_in_log_order() {
        // Three nets taking turns frame by frame; each net's frames must come out together.
        let buckets: std::collections::BTreeSet<u16> = (0..3).map(bucket_of).collect();
        assert_eq!(
            buckets.len(),
            3,
            "nets 0, 1 and 2 fall in buckets of their own"
        );
        let frames: Vec<(u32, u32, u32)> = (0..30).map(|k| (k % 3, k, 0)).collect();
        let bytes = log(&frames);
        let header = LogHeader::parse(&bytes).unwrap();
        let mut window = WindowFrames::new();
        let mut rejects = Vec::new();
        read_window(
            &bytes,
            header,
            64,
            bytes.len(),
            4096,
            &mut window,
            &mut rejects,
        );
        assert!(rejects.is_empty());
        let mut order = Vec::new();
        window.partition(&mut order);
        let frame_len = header.frame_len() as u64;
        let nets: Vec<u64> = order.iter().map(|&at| (at - 64) / frame_len % 3).collect();
        let changes = nets.windows(2).filter(|pair| pair[0] != pair[1]).count();
        assert_eq!(changes, 2, "each net's ten frames in one stretch: {nets:?}");
        for stretch in order.chunks(10) {
            assert!(stretch.is_sorted(), "a net's frames keep their log order");
        }
    }
}
