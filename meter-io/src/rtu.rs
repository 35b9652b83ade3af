//! RTU framing facts the client and the simulated line need beyond what `tokio-modbus` does:
//! the CRC, the length of a response frame, and what a failed exchange left on the line.
//!
//! `tokio-modbus` encodes requests and decodes answers. When it gives up (no complete valid
//! frame before the timeout) the bus still wants to say *why*: silence, a frame whose CRC does
//! not match, or bytes that form no frame at all. [`classify`] answers that from the raw bytes
//! the bus saw during the exchange.

/// CRC-16/MODBUS: polynomial 0x8005 reflected, initial value 0xFFFF, sent low byte first.
pub const CRC_MODBUS: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);

/// The CRC-16/MODBUS of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC_MODBUS.checksum(bytes)
}

/// Largest RTU frame: address, 253-byte PDU, CRC.
pub const MAX_FRAME_LEN: usize = 256;

/// The 8-byte request frame reading `count` registers from `address` with `function`.
pub fn read_request(unit: u8, function: u8, address: u16, count: u16) -> [u8; 8] {
    let mut frame = [0u8; 8];
    frame[0] = unit;
    frame[1] = function;
    frame[2..4].copy_from_slice(&address.to_be_bytes());
    frame[4..6].copy_from_slice(&count.to_be_bytes());
    let crc = crc16(&frame[..6]);
    frame[6..8].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// The length of the response frame starting at `buf[0]`, for answers to reads (0x03, 0x04)
/// and exception answers, once enough bytes are there to tell; `None` for any other function
/// or too few bytes.
pub fn response_frame_len(buf: &[u8]) -> Option<usize> {
    match *buf.get(1)? {
        0x03 | 0x04 => Some(5 + usize::from(*buf.get(2)?)),
        0x81..=0xFF => Some(5),
        _ => None,
    }
}

/// What the bytes seen during a failed exchange were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFault {
    /// Nothing arrived.
    Silence,
    /// A complete frame for this unit and function arrived, but its CRC does not match.
    Crc {
        /// The CRC the frame carried.
        received: u16,
        /// The CRC of the frame's contents.
        computed: u16,
    },
    /// A complete frame with a valid CRC arrived at `end` (so the failure was in its content).
    Valid {
        /// Offset just past the frame.
        end: usize,
    },
    /// Bytes arrived but no complete frame for this unit and function is among them.
    Garbled {
        /// How many bytes arrived.
        bytes: usize,
    },
}

/// Looks for the answer of `unit` to `function` in `raw`, skipping leading noise.
pub fn classify(unit: u8, function: u8, raw: &[u8]) -> LineFault {
    if raw.is_empty() {
        return LineFault::Silence;
    }
    let mut crc_fault = None;
    for start in 0..raw.len() {
        let candidate = &raw[start..];
        if candidate[0] != unit
            || candidate
                .get(1)
                .is_none_or(|&f| f != function && f != function | 0x80)
        {
            continue;
        }
        let Some(len) = response_frame_len(candidate) else {
            continue;
        };
        let Some(frame) = candidate.get(..len) else {
            continue;
        };
        let computed = crc16(&frame[..len - 2]);
        let received = u16::from_le_bytes([frame[len - 2], frame[len - 1]]);
        if computed == received {
            return LineFault::Valid { end: start + len };
        }
        crc_fault.get_or_insert(LineFault::Crc { received, computed });
    }
    crc_fault.unwrap_or(LineFault::Garbled { bytes: raw.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        // The catalogue check value of CRC-16/MODBUS.
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn crc_of_textbook_frames() {
        // Read 2 input registers from 0x0048 of unit 1: the request every SDM120 guide shows,
        // "01 04 00 48 00 02 F1 DD".
        assert_eq!(
            read_request(1, 0x04, 0x0048, 2),
            [0x01, 0x04, 0x00, 0x48, 0x00, 0x02, 0xF1, 0xDD]
        );
        // The Modbus over Serial Line guide's example: read 1 holding register at 0x0000 of
        // unit 1 is "01 03 00 00 00 01 84 0A".
        assert_eq!(
            read_request(1, 0x03, 0, 1),
            [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A]
        );
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(response_frame_len(&[1, 4, 4]), Some(9));
        assert_eq!(response_frame_len(&[1, 0x84]), Some(5));
        assert_eq!(response_frame_len(&[1, 4]), None);
        assert_eq!(response_frame_len(&[1, 6, 0]), None);
    }

    #[test]
    fn classification() {
        // 01 04 02 00 2A + CRC: a one-register answer holding 42.
        let mut good = vec![0x01, 0x04, 0x02, 0x00, 0x2A];
        let crc = crc16(&good);
        good.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(classify(1, 4, &[]), LineFault::Silence);
        assert_eq!(classify(1, 4, &good), LineFault::Valid { end: 7 });
        let mut noisy = vec![0xFF, 0x00, 0x13];
        noisy.extend_from_slice(&good);
        assert_eq!(classify(1, 4, &noisy), LineFault::Valid { end: 10 });
        let mut bad = good.clone();
        bad[6] ^= 0xFF;
        assert_eq!(
            classify(1, 4, &bad),
            LineFault::Crc {
                received: u16::from_le_bytes([good[5], good[6] ^ 0xFF]),
                computed: crc
            }
        );
        assert_eq!(classify(2, 4, &good), LineFault::Garbled { bytes: 7 });
        assert_eq!(classify(1, 4, &good[..6]), LineFault::Garbled { bytes: 6 });
    }
}
