//! Round log v1: a 64-byte header and frames back to back (DESIGN §4, normative).
//!
//! ```text
//! offset size field
//!  0     8    magic "DCNETLOG"
//!  8     2    format version = 1
//! 10     2    lanes
//! 12     4    reserved = 0
//! 16     8    created, ms since the Unix epoch
//! 24     8    frame count (0 = unknown, e.g. still being written)
//! 32    32    zero
//! ```
//! [`FrameScanner`] walks the frames of a log and never panics: every whole valid frame is
//! yielded, every bad stretch is yielded as an error with its offset, and a partial frame at the
//! end is reported as truncated.

use std::io::{Seek, SeekFrom, Write};

use engine::MAX_LANES;

use crate::frame::{
    EncodeError, FRAME_HEADER_LEN, FRAME_MAGIC, FRAME_VERSION, Frame, FrameError, FrameFields,
    FrameView, frame_crc, frame_len,
};

/// Length of the log header.
pub const LOG_HEADER_LEN: usize = 64;
/// The eight magic bytes of a round log.
pub const LOG_MAGIC: [u8; 8] = *b"DCNETLOG";
/// The only log format version this crate reads and writes.
pub const LOG_VERSION: u16 = 1;

/// Why a round log (as a whole) cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The file is empty.
    #[error("empty file: a round log starts with a 64-byte header")]
    Empty,
    /// Shorter than the header.
    #[error("truncated header: {0} of 64 bytes")]
    TruncatedHeader(usize),
    /// Not a round log.
    #[error("not a dcnet round log (magic {0:02x?}, expected \"DCNETLOG\")")]
    BadMagic([u8; 8]),
    /// A format version this reader does not know.
    #[error("unsupported round log version {0} (expected 1)")]
    BadVersion(u16),
    /// The header's lane count is outside 1..=32.
    #[error("header lane count {0} is outside 1..=32")]
    BadLanes(u16),
    /// Reserved header bytes are not zero.
    #[error("reserved header bytes are not zero")]
    ReservedBytes,
    /// A frame does not fit this log.
    #[error("frame has {found} lanes, the log has {expected}")]
    FrameLanes { found: usize, expected: u8 },
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The parsed header of a round log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    /// Lanes of every frame in the log, 1..=32.
    pub lanes: u8,
    /// When the log was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// Frames in the log; 0 means unknown.
    pub frame_count: u64,
}

impl LogHeader {
    /// Parses the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.is_empty() {
            return Err(LogError::Empty);
        }
        if bytes.len() < LOG_HEADER_LEN {
            return Err(LogError::TruncatedHeader(bytes.len()));
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[..8]);
        if magic != LOG_MAGIC {
            return Err(LogError::BadMagic(magic));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != LOG_VERSION {
            return Err(LogError::BadVersion(version));
        }
        let lanes = u16::from_le_bytes([bytes[10], bytes[11]]);
        if !(1..=MAX_LANES).contains(&usize::from(lanes)) {
            return Err(LogError::BadLanes(lanes));
        }
        if bytes[12..16] != [0; 4] || bytes[32..64].iter().any(|&b| b != 0) {
            return Err(LogError::ReservedBytes);
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        // `lanes <= 32` was checked above.
        Ok(Self {
            lanes: lanes as u8,
            created_ms: word(16),
            frame_count: word(24),
        })
    }

    /// The encoded header.
    pub fn encode(&self) -> [u8; LOG_HEADER_LEN] {
        let mut out = [0u8; LOG_HEADER_LEN];
        out[..8].copy_from_slice(&LOG_MAGIC);
        out[8..10].copy_from_slice(&LOG_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&u16::from(self.lanes).to_le_bytes());
        out[16..24].copy_from_slice(&self.created_ms.to_le_bytes());
        out[24..32].copy_from_slice(&self.frame_count.to_le_bytes());
        out
    }

    /// The length of each frame of this log.
    pub fn frame_len(&self) -> usize {
        frame_len(usize::from(self.lanes))
    }
}

/// Writes a round log: the header first (frame count 0, "unknown"), then frames.
///
/// Frames are buffered in memory and written in large chunks. [`LogWriter::finish`] flushes;
/// [`LogWriter::finish_with_count`] also patches the frame count into the header when the
/// destination can seek.
pub struct LogWriter<W: Write> {
    inner: W,
    header: LogHeader,
    buffer: Vec<u8>,
    frames: u64,
}

const WRITE_CHUNK: usize = 1 << 20;

impl<W: Write> LogWriter<W> {
    /// Starts a log with `lanes` lanes per frame, created at `created_ms`.
    pub fn new(mut inner: W, lanes: u8, created_ms: u64) -> Result<Self, LogError> {
        if !(1..=MAX_LANES).contains(&usize::from(lanes)) {
            return Err(LogError::BadLanes(u16::from(lanes)));
        }
        let header = LogHeader {
            lanes,
            created_ms,
            frame_count: 0,
        };
        inner.write_all(&header.encode())?;
        Ok(Self {
            inner,
            header,
            buffer: Vec::with_capacity(WRITE_CHUNK),
            frames: 0,
        })
    }

    /// Appends one frame; its lane count must be the log's.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), LogError> {
        self.write_fields(&frame.fields(), &frame.lanes)
    }

    /// Appends the frame of `fields` and `lanes`; the lane count must be the log's.
    pub fn write_fields(&mut self, fields: &FrameFields, lanes: &[u64]) -> Result<(), LogError> {
        if lanes.len() != usize::from(self.header.lanes) {
            return Err(LogError::FrameLanes {
                found: lanes.len(),
                expected: self.header.lanes,
            });
        }
        fields.encode_into(lanes, &mut self.buffer)?;
        self.frames += 1;
        if self.buffer.len() >= WRITE_CHUNK {
            self.inner.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Appends already encoded frame bytes (e.g. copied from another log) unchecked.
    pub fn write_raw(&mut self, bytes: &[u8], frames: u64) -> Result<(), LogError> {
        self.buffer.extend_from_slice(bytes);
        self.frames += frames;
        if self.buffer.len() >= WRITE_CHUNK {
            self.inner.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes everything and returns the destination; the header's frame count stays 0.
    pub fn finish(mut self) -> Result<W, LogError> {
        self.inner.write_all(&self.buffer)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek> LogWriter<W> {
    /// Flushes, writes the final frame count into the header and returns the destination.
    pub fn finish_with_count(self) -> Result<W, LogError> {
        let frames = self.frames;
        let mut header = self.header;
        let mut inner = self.finish()?;
        header.frame_count = frames;
        let end = inner.stream_position()?;
        inner.seek(SeekFrom::Start(0))?;
        inner.write_all(&header.encode())?;
        inner.seek(SeekFrom::Start(end))?;
        inner.flush()?;
        Ok(inner)
    }
}

/// One step of a [`FrameScanner`]: a valid frame or a rejected stretch, with its position.
#[derive(Debug, Clone, Copy)]
pub struct Scanned<'a> {
    /// Byte offset of the frame (or bad stretch) in the log, header included.
    pub offset: u64,
    /// Bytes consumed.
    pub len: usize,
    /// The frame, or why these bytes are not one.
    pub frame: Result<FrameView<'a>, FrameError>,
}

/// Iterates over the frames of a round log held in memory (usually mapped).
///
/// A bad frame is skipped by the log's frame length when a valid frame follows it; otherwise the
/// scanner searches forward byte by byte for the next offset where a frame with correct magic,
/// version and CRC starts, and reports the stretch in between
/// frame by frame, so a few damaged bytes never cost the frames around them.
pub struct FrameScanner<'a> {
    bytes: &'a [u8],
    header: LogHeader,
    pos: usize,
    /// While inside a damaged stretch: where the next good frame starts.
    bad_until: Option<usize>,
}

impl<'a> FrameScanner<'a> {
    /// Parses the header of the log in `bytes` and starts scanning after it.
    pub fn new(bytes: &'a [u8]) -> Result<Self, LogError> {
        let header = LogHeader::parse(bytes)?;
        Ok(Self {
            bytes,
            header,
            pos: LOG_HEADER_LEN,
            bad_until: None,
        })
    }

    /// A scanner of the log `bytes` (whose header is `header`) that starts at byte `pos` as if
    /// a frame ended there: how the parallel reader scans one morsel of a log. It yields exactly
    /// what [`FrameScanner::new`] yields from the moment that scanner is at `pos` between frames.
    pub fn starting_at(bytes: &'a [u8], header: LogHeader, pos: usize) -> Self {
        Self {
            bytes,
            header,
            pos: pos.max(LOG_HEADER_LEN),
            bad_until: None,
        }
    }

    /// The log's header.
    pub fn header(&self) -> LogHeader {
        self.header
    }

    /// The byte offset of the next item.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether the scanner is between frames rather than inside a damaged stretch: from such a
    /// position, what follows depends only on the bytes from here on.
    pub fn between_frames(&self) -> bool {
        self.bad_until.is_none_or(|end| self.pos >= end)
    }

    /// The length of a whole frame at `pos` if one with valid magic, version, lane byte and CRC
    /// starts there (whatever its lane count), else `None`.
    fn crc_valid_frame_at(&self, pos: usize) -> Option<usize> {
        let rest = self.bytes.get(pos..)?;
        if rest.len() < FRAME_HEADER_LEN || rest[..2] != FRAME_MAGIC || rest[2] != FRAME_VERSION {
            return None;
        }
        let lanes = usize::from(rest[5]);
        if !(1..=MAX_LANES).contains(&lanes) || rest.len() < frame_len(lanes) {
            return None;
        }
        let len = frame_len(lanes);
        let stored = u32::from_le_bytes([rest[20], rest[21], rest[22], rest[23]]);
        (frame_crc(&rest[..len]) == stored).then_some(len)
    }

    fn emit(&mut self, len: usize, frame: Result<FrameView<'a>, FrameError>) -> Scanned<'a> {
        let offset = self.pos as u64;
        self.pos += len;
        Scanned { offset, len, frame }
    }

    /// Reports the next piece of a damaged stretch ending at `end`: a frame-sized chunk with the
    /// reason its bytes fail, or the misaligned remainder.
    fn next_in_damaged_stretch(&mut self, end: usize) -> Scanned<'a> {
        let frame_len = self.header.frame_len();
        let lanes = self.header.lanes;
        let available = end - self.pos;
        if available >= frame_len {
            let reason = match FrameView::parse(&self.bytes[self.pos..end], lanes) {
                Err(e) => e,
                // A chunk that parses would have ended the stretch; report it as misaligned.
                Ok(_) => FrameError::Truncated {
                    needed: frame_len,
                    got: available,
                },
            };
            return self.emit(frame_len, Err(reason));
        }
        // Less than a frame is left of the stretch: a partial frame at the end of the log, or
        // stray bytes before the next good frame.
        let reason = if end == self.bytes.len() {
            FrameError::Truncated {
                needed: frame_len,
                got: available,
            }
        } else {
            FrameError::StrayBytes(available)
        };
        self.emit(available, Err(reason))
    }
}

impl<'a> Iterator for FrameScanner<'a> {
    type Item = Scanned<'a>;

    fn next(&mut self) -> Option<Scanned<'a>> {
        if let Some(end) = self.bad_until {
            if self.pos < end {
                return Some(self.next_in_damaged_stretch(end));
            }
            self.bad_until = None;
        }
        if self.pos >= self.bytes.len() {
            return None;
        }
        let lanes = self.header.lanes;
        if let Some(len) = self.crc_valid_frame_at(self.pos) {
            // Magic, version and CRC are verified: finish the checks in `FrameView::parse`'s
            // order without computing the CRC a second time.
            let bytes = &self.bytes[self.pos..self.pos + len];
            let frame = if bytes[5] == lanes {
                FrameView::parse_fields(bytes)
            } else {
                Err(FrameError::BadLanes {
                    found: bytes[5],
                    expected: lanes,
                })
            };
            return Some(self.emit(len, frame));
        }
        // Damaged bytes: find where the next good frame starts, preferring the regular spacing.
        let frame_len = self.header.frame_len();
        let regular = self.pos + frame_len;
        let end = if regular >= self.bytes.len() || self.crc_valid_frame_at(regular).is_some() {
            regular.min(self.bytes.len())
        } else {
            (self.pos + 1..self.bytes.len())
                .find(|&at| self.crc_valid_frame_at(at).is_some())
                .unwrap_or(self.bytes.len())
        };
        self.bad_until = Some(end);
        Some(self.next_in_damaged_stretch(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Notification;

    fn frame(client: u32, lanes: usize) -> Frame {
        Frame {
            notification: Notification::Transmit,
            transmission: true,
            dc_net_id: 1,
            client_id: client,
            round: 5,
            timestamp_ms: 9,
            lanes: vec![u64::from(client); lanes],
        }
    }

    fn log_of(frames: &[Frame], lanes: u8) -> Vec<u8> {
        let mut writer = LogWriter::new(std::io::Cursor::new(Vec::new()), lanes, 77).unwrap();
        for f in frames {
            writer.write_frame(f).unwrap();
        }
        writer.finish_with_count().unwrap().into_inner()
    }

    #[test]
    fn header_round_trip_and_count_patch() {
        let bytes = log_of(&[frame(1, 2), frame(2, 2)], 2);
        let header = LogHeader::parse(&bytes).unwrap();
        assert_eq!(
            header,
            LogHeader {
                lanes: 2,
                created_ms: 77,
                frame_count: 2
            }
        );
        assert_eq!(bytes.len(), 64 + 2 * 48);
        assert_eq!(&bytes[..8], b"DCNETLOG");
    }

    #[test]
    fn header_errors() {
        assert!(matches!(LogHeader::parse(&[]), Err(LogError::Empty)));
        assert!(matches!(
            LogHeader::parse(&[0; 10]),
            Err(LogError::TruncatedHeader(10))
        ));
        let good = log_of(&[], 1);
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(LogHeader::parse(&bad), Err(LogError::BadMagic(_))));
        let mut bad = good.clone();
        bad[8] = 2;
        assert!(matches!(
            LogHeader::parse(&bad),
            Err(LogError::BadVersion(2))
        ));
        let mut bad = good.clone();
        bad[10] = 33;
        assert!(matches!(
            LogHeader::parse(&bad),
            Err(LogError::BadLanes(33))
        ));
        let mut bad = good;
        bad[40] = 1;
        assert!(matches!(
            LogHeader::parse(&bad),
            Err(LogError::ReservedBytes)
        ));
    }

    #[test]
    fn writer_refuses_frames_of_another_lane_count() {
        let mut writer = LogWriter::new(Vec::new(), 2, 0).unwrap();
        assert!(matches!(
            writer.write_frame(&frame(1, 3)),
            Err(LogError::FrameLanes {
                found: 3,
                expected: 2
            })
        ));
    }

    #[test]
    fn scanner_yields_every_frame_and_reports_a_truncated_tail() {
        let mut bytes = log_of(&[frame(1, 1), frame(2, 1), frame(3, 1)], 1);
        bytes.truncate(bytes.len() - 5);
        let items: Vec<_> = FrameScanner::new(&bytes).unwrap().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].frame.unwrap().client_id(), 1);
        assert_eq!(items[1].offset, 64 + 40);
        assert_eq!(
            items[2].frame,
            Err(FrameError::Truncated {
                needed: 40,
                got: 35
            })
        );
    }

    fn valid_clients(items: &[Scanned<'_>]) -> Vec<u32> {
        items
            .iter()
            .filter_map(|s| s.frame.ok())
            .map(|f| f.client_id())
            .collect()
    }

    #[test]
    fn two_adjacent_damaged_frames_are_two_rejects_and_the_rest_survives() {
        let frames: Vec<_> = (1..=5).map(|c| frame(c, 1)).collect();
        let mut bytes = log_of(&frames, 1);
        bytes[64 + 40 + 35] ^= 1; // data of client 2
        bytes[64 + 80 + 35] ^= 4; // data of client 3
        let items: Vec<_> = FrameScanner::new(&bytes).unwrap().collect();
        let good = valid_clients(&items);
        assert_eq!(good, vec![1, 4, 5]);
        let bad: Vec<_> = items
            .iter()
            .filter(|s| s.frame.is_err())
            .map(|s| s.offset)
            .collect();
        assert_eq!(bad, vec![104, 144]);
    }

    #[test]
    fn inserted_garbage_is_skipped_and_frames_after_it_count() {
        let frames: Vec<_> = (1..=3).map(|c| frame(c, 2)).collect();
        let mut bytes = log_of(&frames, 2);
        // Three garbage bytes after the first frame shift everything that follows.
        let at = 64 + 48;
        bytes.splice(at..at, [0xAA, 0xBB, 0xCC]);
        let items: Vec<_> = FrameScanner::new(&bytes).unwrap().collect();
        let good = valid_clients(&items);
        assert_eq!(good, vec![1, 2, 3]);
        assert_eq!(items[1].frame, Err(FrameError::StrayBytes(3)));
        assert_eq!(items[1].offset, 112);
        let consumed: usize = items.iter().map(|s| s.len).sum();
        assert_eq!(consumed, bytes.len() - 64);
    }

    #[test]
    fn frames_of_another_lane_count_are_rejected_without_losing_alignment() {
        let mut bytes = log_of(&[frame(1, 2)], 2);
        bytes.extend(frame(2, 3).to_bytes().unwrap());
        bytes.extend(frame(3, 2).to_bytes().unwrap());
        let items: Vec<_> = FrameScanner::new(&bytes).unwrap().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[1].frame,
            Err(FrameError::BadLanes {
                found: 3,
                expected: 2
            })
        );
        assert_eq!(items[1].len, 56);
        assert_eq!(items[2].frame.unwrap().client_id(), 3);
    }
}
