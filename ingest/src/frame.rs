//! Frame v1: one gateway message (DESIGN §3, normative).
//!
//! ```text
//! offset size field
//!  0     2    magic "DC"          16    4    round
//!  2     1    version = 1         20    4    crc32c (of the frame with this field zeroed)
//!  3     1    notification 1..=5  24    8    timestamp, ms since the Unix epoch
//!  4     1    flags (bit 0 = tx)  32    8·L  data: L lanes of u64
//!  5     1    lanes L, 1..=32
//!  6     2    reserved = 0
//!  8     4    dc_net_id
//! 12     4    client_id
//! ```
//! All integers are little-endian. Decoding is "parse, don't validate": [`FrameView::parse`]
//! yields a view whose every field is known to be valid, or a [`FrameError`] saying why not.

use engine::MAX_LANES;

/// Size of the fixed part of a frame, before the lanes.
pub const FRAME_HEADER_LEN: usize = 32;
/// The two magic bytes, ASCII "DC".
pub const FRAME_MAGIC: [u8; 2] = *b"DC";
/// The only frame version this crate reads and writes.
pub const FRAME_VERSION: u8 = 1;
/// Flag bit 0: the transmission bit.
pub const FLAG_TRANSMISSION: u8 = 0b1;

pub(crate) const CRC_RANGE: std::ops::Range<usize> = 20..24;

/// The fixed 32 bytes of a frame as laid out on the wire, for reading fields in place
/// (`bytemuck`, no copy): the columnar reader views each frame of an 8-byte-aligned log through
/// it. Integers are stored little-endian, so the accessors convert; nothing here is validated
/// (that is [`FrameView::parse`]'s and the reader's job).
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct RawHeader {
    pub magic: [u8; 2],
    pub version: u8,
    pub notification: u8,
    pub flags: u8,
    pub lanes: u8,
    pub reserved: [u8; 2],
    dc_net_id: u32,
    client_id: u32,
    round: u32,
    crc32c: u32,
    timestamp_ms: u64,
}

impl RawHeader {
    /// The header at the start of `frame` (at least [`FRAME_HEADER_LEN`] bytes): viewed in
    /// place when the bytes are 8-byte aligned, as every frame of a mapped log is, else read.
    ///
    /// # Panics
    /// If `frame` is shorter than the header.
    #[inline]
    pub fn of(frame: &[u8]) -> RawHeader {
        let bytes = &frame[..FRAME_HEADER_LEN];
        match bytemuck::try_from_bytes::<RawHeader>(bytes) {
            Ok(header) => *header,
            Err(_) => bytemuck::pod_read_unaligned(bytes),
        }
    }

    pub fn dc_net_id(&self) -> u32 {
        u32::from_le(self.dc_net_id)
    }

    pub fn client_id(&self) -> u32 {
        u32::from_le(self.client_id)
    }

    pub fn round(&self) -> u32 {
        u32::from_le(self.round)
    }

    pub fn crc32c(&self) -> u32 {
        u32::from_le(self.crc32c)
    }

    pub fn timestamp_ms(&self) -> u64 {
        u64::from_le(self.timestamp_ms)
    }
}

/// The byte length of a frame with `lanes` lanes: `32 + 8·L`.
pub const fn frame_len(lanes: usize) -> usize {
    FRAME_HEADER_LEN + 8 * lanes
}

pub use engine::Notification;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than a whole frame.
    #[error("truncated frame: {got} of {needed} bytes")]
    Truncated { needed: usize, got: usize },
    /// Bytes between frames that are too few to be one (found while resynchronising).
    #[error("{0} stray bytes between frames")]
    StrayBytes(usize),
    /// The first two bytes are not "DC".
    #[error("bad magic {0:02x?} (expected \"DC\")")]
    BadMagic([u8; 2]),
    /// A version this reader does not know.
    #[error("unsupported frame version {0} (expected 1)")]
    BadVersion(u8),
    /// A lane count outside 1..=32 or different from the log's.
    #[error("frame has {found} lanes, the log has {expected}")]
    BadLanes { found: u8, expected: u8 },
    /// Flag bits other than the transmission bit, or non-zero reserved bytes.
    #[error("reserved bits set (flags {flags:#04x}, reserved {reserved:#06x})")]
    ReservedBits { flags: u8, reserved: u16 },
    /// A notification code outside 1..=5.
    #[error("unknown notification code {0}")]
    UnknownNotification(u8),
    /// The stored CRC-32C does not match the frame's bytes.
    #[error("CRC-32C mismatch: stored {stored:08x}, computed {computed:08x}")]
    CrcMismatch { stored: u32, computed: u32 },
}

pub use crate::crc::frame_crc;

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A validated frame borrowed from a buffer (a mapped round log, usually).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameView<'a> {
    bytes: &'a [u8],
    notification: Notification,
}

impl<'a> FrameView<'a> {
    /// Parses the frame at the start of `bytes`, which must carry `expected_lanes` lanes.
    ///
    /// Checks run in wire order (magic, version, lanes, reserved bits, notification) and the CRC
    /// last, so a frame written with a wrong field but a correct CRC reports that field.
    pub fn parse(bytes: &'a [u8], expected_lanes: u8) -> Result<Self, FrameError> {
        if bytes.len() < FRAME_HEADER_LEN {
            let needed = frame_len(usize::from(expected_lanes));
            return Err(FrameError::Truncated {
                needed,
                got: bytes.len(),
            });
        }
        let magic = [bytes[0], bytes[1]];
        if magic != FRAME_MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if bytes[2] != FRAME_VERSION {
            return Err(FrameError::BadVersion(bytes[2]));
        }
        let lanes = bytes[5];
        if lanes != expected_lanes || !(1..=MAX_LANES).contains(&usize::from(lanes)) {
            return Err(FrameError::BadLanes {
                found: lanes,
                expected: expected_lanes,
            });
        }
        let len = frame_len(usize::from(lanes));
        if bytes.len() < len {
            return Err(FrameError::Truncated {
                needed: len,
                got: bytes.len(),
            });
        }
        let view = Self::parse_fields(&bytes[..len])?;
        let (stored, computed) = (read_u32(view.bytes, CRC_RANGE.start), frame_crc(view.bytes));
        if stored != computed {
            return Err(FrameError::CrcMismatch { stored, computed });
        }
        Ok(view)
    }

    /// The checks after the lane count, without the CRC: for a caller that has just verified the
    /// CRC of exactly these bytes (the log scanner), so that no frame pays for its CRC twice.
    /// `bytes` is exactly one frame long.
    pub(crate) fn parse_fields(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (flags, reserved) = (bytes[4], read_u16(bytes, 6));
        if flags & !FLAG_TRANSMISSION != 0 || reserved != 0 {
            return Err(FrameError::ReservedBits { flags, reserved });
        }
        let notification =
            Notification::from_code(bytes[3]).ok_or(FrameError::UnknownNotification(bytes[3]))?;
        Ok(Self {
            bytes,
            notification,
        })
    }

    /// The frame's bytes, exactly `32 + 8·L` of them.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The notification code.
    pub fn notification(&self) -> Notification {
        self.notification
    }

    /// Whether the transmission bit is set.
    pub fn transmission(&self) -> bool {
        self.bytes[4] & FLAG_TRANSMISSION != 0
    }

    /// The lane count L.
    pub fn lane_count(&self) -> usize {
        usize::from(self.bytes[5])
    }

    /// The DC net the frame belongs to.
    pub fn dc_net_id(&self) -> u32 {
        read_u32(self.bytes, 8)
    }

    /// The sending client.
    pub fn client_id(&self) -> u32 {
        read_u32(self.bytes, 12)
    }

    /// The round number.
    pub fn round(&self) -> u32 {
        read_u32(self.bytes, 16)
    }

    /// Milliseconds since the Unix epoch when the frame was made.
    pub fn timestamp_ms(&self) -> u64 {
        read_u64(self.bytes, 24)
    }

    /// Lane `index` of the data, if there is such a lane.
    pub fn lane(&self, index: usize) -> Option<u64> {
        (index < self.lane_count()).then(|| read_u64(self.bytes, FRAME_HEADER_LEN + 8 * index))
    }

    /// The data lanes in order.
    pub fn lanes(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        let bytes = self.bytes;
        bytes[FRAME_HEADER_LEN..].chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        })
    }

    /// An owned copy of the frame.
    pub fn to_frame(&self) -> Frame {
        Frame {
            notification: self.notification,
            transmission: self.transmission(),
            dc_net_id: self.dc_net_id(),
            client_id: self.client_id(),
            round: self.round(),
            timestamp_ms: self.timestamp_ms(),
            lanes: self.lanes().collect(),
        }
    }
}

impl std::fmt::Debug for FrameView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_frame().fmt(f)
    }
}

/// An owned frame, for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The notification code.
    pub notification: Notification,
    /// The transmission bit.
    pub transmission: bool,
    /// The DC net.
    pub dc_net_id: u32,
    /// The sending client.
    pub client_id: u32,
    /// The round number.
    pub round: u32,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The data lanes, 1..=32 of them.
    pub lanes: Vec<u64>,
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame carries no lanes or more than 32.
    #[error("a frame carries 1..={MAX_LANES} lanes, not {0}")]
    LaneCount(usize),
}

/// The fields of a frame other than its lanes: with borrowed lanes, enough to encode a frame
/// without building an owned [`Frame`] (simulators encode tens of millions of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFields {
    /// The notification code.
    pub notification: Notification,
    /// The transmission bit.
    pub transmission: bool,
    /// The DC net.
    pub dc_net_id: u32,
    /// The sending client.
    pub client_id: u32,
    /// The round number.
    pub round: u32,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl FrameFields {
    /// Appends the frame of these fields and `lanes`, CRC included, to `out`.
    pub fn encode_into(&self, lanes: &[u64], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let count = lanes.len();
        if !(1..=MAX_LANES).contains(&count) {
            return Err(EncodeError::LaneCount(count));
        }
        // The fixed header is assembled on the stack and appended at once: per-field appends
        // cost more than the CRC.
        let mut header = [0u8; FRAME_HEADER_LEN];
        header[0..2].copy_from_slice(&FRAME_MAGIC);
        header[2] = FRAME_VERSION;
        header[3] = self.notification.code();
        header[4] = if self.transmission {
            FLAG_TRANSMISSION
        } else {
            0
        };
        // `count <= 32` was checked above, so the cast cannot truncate.
        header[5] = count as u8;
        header[8..12].copy_from_slice(&self.dc_net_id.to_le_bytes());
        header[12..16].copy_from_slice(&self.client_id.to_le_bytes());
        header[16..20].copy_from_slice(&self.round.to_le_bytes());
        header[24..32].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        let start = out.len();
        out.reserve(frame_len(count));
        out.extend_from_slice(&header);
        for lane in lanes {
            out.extend_from_slice(&lane.to_le_bytes());
        }
        let frame = &mut out[start..];
        // The CRC field is still zero, so the CRC of the whole frame is the one DESIGN §3 asks
        // for, in one pass.
        let crc = frame_crc(frame);
        frame[CRC_RANGE].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }
}

impl Frame {
    /// The encoded length, `32 + 8·L`.
    pub fn encoded_len(&self) -> usize {
        frame_len(self.lanes.len())
    }

    /// The fields other than the lanes.
    pub fn fields(&self) -> FrameFields {
        FrameFields {
            notification: self.notification,
            transmission: self.transmission,
            dc_net_id: self.dc_net_id,
            client_id: self.client_id,
            round: self.round,
            timestamp_ms: self.timestamp_ms,
        }
    }

    /// Appends the encoded frame, CRC included, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.fields().encode_into(&self.lanes, out)
    }

    /// The encoded frame.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DESIGN_VECTORS: &str = include_str!("../../data/vectors/design-s8.txt");

    fn vector(prefix: &str) -> &'static str {
        DESIGN_VECTORS
            .lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.split(" = ").nth(1))
            .expect("vector present")
    }

    fn design_frame() -> Frame {
        Frame {
            notification: Notification::Transmit,
            transmission: true,
            dc_net_id: 7,
            client_id: 3,
            round: 96,
            timestamp_ms: 1_700_000_000_000,
            lanes: vec![123_456_789, u64::MAX],
        }
    }

    #[test]
    fn crc32c_check_value_matches_design() {
        assert_eq!(
            format!("{:08x}", crc32c::crc32c(b"123456789")),
            vector("crc32c(123456789)")
        );
    }

    #[test]
    fn raw_header_reads_the_design_frame_aligned_and_unaligned() {
        let bytes = hex::decode(vector("frame(transmit")).unwrap();
        // Stored at an 8-byte boundary (viewed in place) and one byte further (read).
        let mut buffer = vec![0u64; bytes.len() / 8 + 2];
        let words: &mut [u8] = bytemuck::cast_slice_mut(&mut buffer);
        for start in [0, 1] {
            words[start..start + bytes.len()].copy_from_slice(&bytes);
            let header = RawHeader::of(&words[start..start + bytes.len()]);
            assert_eq!(header.magic, *b"DC");
            // Version 1, transmit (code 5), transmission bit set.
            assert_eq!(
                (header.version, header.notification, header.flags),
                (1, 5, 1)
            );
            assert_eq!(header.lanes, 2);
            // The DESIGN §8 frame: net 7, client 3, round 96, made at 1,700,000,000,000 ms.
            assert_eq!(
                (header.dc_net_id(), header.client_id(), header.round()),
                (7, 3, 96)
            );
            assert_eq!(header.timestamp_ms(), 1_700_000_000_000);
            // Bytes 20..24 of the vector, aa 50 f1 46, little-endian.
            assert_eq!(header.crc32c(), 0x46F1_50AA);
        }
    }

    #[test]
    fn encoding_matches_design_frame_vector() {
        let bytes = design_frame().to_bytes().unwrap();
        assert_eq!(hex::encode(&bytes), vector("frame(transmit"));
    }

    #[test]
    fn decoding_the_design_vector_gives_its_fields() {
        let bytes = hex::decode(vector("frame(transmit")).unwrap();
        let view = FrameView::parse(&bytes, 2).unwrap();
        assert_eq!(view.to_frame(), design_frame());
        assert_eq!(view.lane(1), Some(u64::MAX));
        assert_eq!(view.lane(2), None);
    }

    #[test]
    fn each_bad_field_has_its_own_error() {
        let good = design_frame().to_bytes().unwrap();
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            FrameView::parse(&bytes, 2).map(|v| v.to_frame())
        };
        assert_eq!(with(0, b'X'), Err(FrameError::BadMagic([b'X', b'C'])));
        assert_eq!(with(2, 2), Err(FrameError::BadVersion(2)));
        assert_eq!(
            with(5, 1),
            Err(FrameError::BadLanes {
                found: 1,
                expected: 2
            })
        );
        assert_eq!(
            with(4, 0b11),
            Err(FrameError::ReservedBits {
                flags: 0b11,
                reserved: 0
            })
        );
        assert_eq!(
            with(7, 1),
            Err(FrameError::ReservedBits {
                flags: 1,
                reserved: 0x0100
            })
        );
        assert_eq!(with(3, 6), Err(FrameError::UnknownNotification(6)));
        assert_eq!(with(3, 0), Err(FrameError::UnknownNotification(0)));
        assert!(matches!(with(40, 0), Err(FrameError::CrcMismatch { .. })));
        assert!(matches!(
            FrameView::parse(&good[..47], 2),
            Err(FrameError::Truncated {
                needed: 48,
                got: 47
            })
        ));
        assert!(matches!(
            FrameView::parse(&[], 2),
            Err(FrameError::Truncated { got: 0, .. })
        ));
        assert_eq!(
            Frame {
                lanes: vec![],
                ..design_frame()
            }
            .to_bytes(),
            Err(EncodeError::LaneCount(0))
        );
    }

    proptest! {
        #[test]
        fn round_trip(code in 1u8..=5, tx: bool, net: u32, client: u32, round: u32, ts: u64,
                      lanes in proptest::collection::vec(any::<u64>(), 1..=32)) {
            let frame = Frame {
                notification: Notification::from_code(code).unwrap(),
                transmission: tx, dc_net_id: net, client_id: client, round, timestamp_ms: ts, lanes,
            };
            let bytes = frame.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), frame.encoded_len());
            let view = FrameView::parse(&bytes, frame.lanes.len() as u8).unwrap();
            prop_assert_eq!(view.to_frame(), frame);
        }

        #[test]
        fn any_single_bit_flip_is_rejected(bit in 0usize..48 * 8) {
            let mut bytes = design_frame().to_bytes().unwrap();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(FrameView::parse(&bytes, 2).is_err());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), lanes: u8) {
            let _ = FrameView::parse(&bytes, lanes);
        }
    }
}
