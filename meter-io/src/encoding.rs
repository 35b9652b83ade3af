//! How a meter packs one value into 16-bit registers: the integer or float type and the order
//! of its words and bytes.
//!
//! Modbus transmits every register high byte first, but a value wider than one register has no
//! standard word order, so meters differ. Naming the bytes of the big-endian value `A B C D`
//! (`A` most significant), the four orders in use are:
//!
//! | order | registers as sent | used by |
//! |---|---|---|
//! | `ABCD` | `[AB, CD]` | Eastron, ABB, SunSpec (big-endian) |
//! | `CDAB` | `[CD, AB]` | Carlo Gavazzi (low word first) |
//! | `BADC` | `[BA, DC]` | bytes swapped inside each word |
//! | `DCBA` | `[DC, BA]` | fully little-endian |
//!
//! 64-bit values follow the same rule over four words (`CDAB` reverses the word order, `BADC`
//! swaps the bytes of each word, `DCBA` does both). For single-register values only the byte
//! swap matters: `ABCD`/`CDAB` read the word as is, `BADC`/`DCBA` swap its two bytes.

use serde::Deserialize;

/// The type a value is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Unsigned 16-bit integer, one register.
    U16,
    /// Signed 16-bit integer (two's complement), one register.
    I16,
    /// Unsigned 32-bit integer, two registers.
    U32,
    /// Signed 32-bit integer, two registers.
    I32,
    /// Unsigned 64-bit integer, four registers.
    U64,
    /// Signed 64-bit integer, four registers.
    I64,
    /// IEEE 754 single precision, two registers.
    F32,
    /// IEEE 754 double precision, four registers.
    F64,
}

impl Encoding {
    /// How many 16-bit registers a value occupies.
    pub fn words(self) -> usize {
        match self {
            Encoding::U16 | Encoding::I16 => 1,
            Encoding::U32 | Encoding::I32 | Encoding::F32 => 2,
            Encoding::U64 | Encoding::I64 | Encoding::F64 => 4,
        }
    }

    /// Whether the value is a float (so NaN means "not available").
    pub fn is_float(self) -> bool {
        matches!(self, Encoding::F32 | Encoding::F64)
    }

    /// The profile's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::U16 => "u16",
            Encoding::I16 => "i16",
            Encoding::U32 => "u32",
            Encoding::I32 => "i32",
            Encoding::U64 => "u64",
            Encoding::I64 => "i64",
            Encoding::F32 => "f32",
            Encoding::F64 => "f64",
        }
    }
}

/// The order of words and bytes of a multi-byte value on the wire (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum WordOrder {
    /// Big-endian: high word first, high byte first.
    #[default]
    ABCD,
    /// Low word first, each word high byte first.
    CDAB,
    /// High word first, each word low byte first.
    BADC,
    /// Little-endian: low word first, low byte first.
    DCBA,
}

impl WordOrder {
    fn reverses_words(self) -> bool {
        matches!(self, WordOrder::CDAB | WordOrder::DCBA)
    }

    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::BADC | WordOrder::DCBA)
    }
}

/// A decoded register value before scaling, with the bit pattern it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    /// From `u16`, `u32` or `u64`.
    Unsigned(u64),
    /// From `i16`, `i32` or `i64`.
    Signed(i64),
    /// From `f32` (widened exactly) or `f64`.
    Float(f64),
}

impl Raw {
    /// The value as `f64` (exact for integers below 2^53 and for every `f32`).
    pub fn as_f64(self) -> f64 {
        match self {
            // Meter counters stay far below 2^53, where the conversion is exact.
            Raw::Unsigned(v) => v as f64,
            Raw::Signed(v) => v as f64,
            Raw::Float(v) => v,
        }
    }
}

/// Why words could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The slice does not hold exactly the number of registers the encoding needs.
    #[error("{encoding} needs {needed} registers, got {got}")]
    WordCount {
        encoding: &'static str,
        needed: usize,
        got: usize,
    },
}

/// Why a value could not be encoded into registers (used by the simulated meter).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value does not fit the integer type.
    #[error("{value} does not fit {encoding}")]
    OutOfRange { value: f64, encoding: &'static str },
}

/// Puts the registers of a value into big-endian (`ABCD`) byte order.
fn normalise(words: &[u16], order: WordOrder, out: &mut [u8; 8]) -> usize {
    let n = words.len();
    for (i, word) in words.iter().enumerate() {
        let slot = if order.reverses_words() { n - 1 - i } else { i };
        let bytes = if order.swaps_bytes() {
            word.to_le_bytes()
        } else {
            word.to_be_bytes()
        };
        out[2 * slot..2 * slot + 2].copy_from_slice(&bytes);
    }
    2 * n
}

/// The bit pattern of a value as an unsigned integer of its width, for "not available"
/// sentinels (e.g. `0x8000` for a SunSpec `int16`, `0xFFFFFFFF` for an ABB `u32`).
pub fn raw_bits(words: &[u16], encoding: Encoding, order: WordOrder) -> Result<u64, DecodeError> {
    check_len(words, encoding)?;
    let mut bytes = [0u8; 8];
    let len = normalise(words, order, &mut bytes);
    Ok(bytes[..len]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn check_len(words: &[u16], encoding: Encoding) -> Result<(), DecodeError> {
    if words.len() == encoding.words() {
        Ok(())
    } else {
        Err(DecodeError::WordCount {
            encoding: encoding.name(),
            needed: encoding.words(),
            got: words.len(),
        })
    }
}

/// Decodes the registers of one value.
pub fn decode(words: &[u16], encoding: Encoding, order: WordOrder) -> Result<Raw, DecodeError> {
    let bits = raw_bits(words, encoding, order)?;
    // The casts below reinterpret a pattern of exactly the type's width, so none truncates.
    Ok(match encoding {
        Encoding::U16 | Encoding::U32 | Encoding::U64 => Raw::Unsigned(bits),
        Encoding::I16 => Raw::Signed(i64::from(bits as u16 as i16)),
        Encoding::I32 => Raw::Signed(i64::from(bits as u32 as i32)),
        Encoding::I64 => Raw::Signed(bits as i64),
        Encoding::F32 => Raw::Float(f64::from(f32::from_bits(bits as u32))),
        Encoding::F64 => Raw::Float(f64::from_bits(bits)),
    })
}

/// Encodes a value into registers: the inverse of [`decode`]. Integers are given as `f64` and
/// must already be whole numbers in range; floats are rounded to the type.
pub fn encode(value: f64, encoding: Encoding, order: WordOrder) -> Result<Vec<u16>, EncodeError> {
    let out_of_range = || EncodeError::OutOfRange {
        value,
        encoding: encoding.name(),
    };
    let fits = |min: f64, max: f64| value.is_finite() && value >= min && value <= max;
    let bits: u64 = match encoding {
        Encoding::U16 if fits(0.0, 65535.0) => value as u64,
        Encoding::I16 if fits(-32768.0, 32767.0) => u64::from(value as i16 as u16),
        Encoding::U32 if fits(0.0, 4294967295.0) => value as u64,
        Encoding::I32 if fits(-2147483648.0, 2147483647.0) => u64::from(value as i32 as u32),
        // The largest f64 below 2^64 and 2^63; `as` saturates at the type's edge anyway.
        Encoding::U64 if fits(0.0, 18446744073709549568.0) => value as u64,
        Encoding::I64 if fits(-9223372036854775808.0, 9223372036854774784.0) => value as i64 as u64,
        Encoding::F32 => u64::from((value as f32).to_bits()),
        Encoding::F64 => value.to_bits(),
        _ => return Err(out_of_range()),
    };
    let n = encoding.words();
    let be = bits.to_be_bytes();
    let be = &be[8 - 2 * n..];
    let mut words = vec![0u16; n];
    for (slot, chunk) in be.chunks_exact(2).enumerate() {
        let i = if order.reverses_words() {
            n - 1 - slot
        } else {
            slot
        };
        words[i] = if order.swaps_bytes() {
            u16::from_le_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], chunk[1]])
        };
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Every fixture below is written out by hand from the IEEE 754 / two's complement encoding
    // of the value, not produced by `encode`.

    #[test]
    fn u32_in_all_four_orders() {
        // 0x11223344 = 287454020.
        let value = Raw::Unsigned(0x1122_3344);
        let cases = [
            (WordOrder::ABCD, [0x1122, 0x3344]),
            (WordOrder::CDAB, [0x3344, 0x1122]),
            (WordOrder::BADC, [0x2211, 0x4433]),
            (WordOrder::DCBA, [0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(
                decode(&words, Encoding::U32, order).unwrap(),
                value,
                "{order:?}"
            );
        }
    }

    #[test]
    fn u64_in_all_four_orders() {
        let value = Raw::Unsigned(0x1122_3344_5566_7788);
        let cases = [
            (WordOrder::ABCD, [0x1122, 0x3344, 0x5566, 0x7788]),
            (WordOrder::CDAB, [0x7788, 0x5566, 0x3344, 0x1122]),
            (WordOrder::BADC, [0x2211, 0x4433, 0x6655, 0x8877]),
            (WordOrder::DCBA, [0x8877, 0x6655, 0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(
                decode(&words, Encoding::U64, order).unwrap(),
                value,
                "{order:?}"
            );
        }
    }

    #[test]
    fn sixteen_bit_values_only_care_about_the_byte_swap() {
        assert_eq!(
            decode(&[0xFF38], Encoding::I16, WordOrder::ABCD).unwrap(),
            Raw::Signed(-200)
        );
        assert_eq!(
            decode(&[0xFF38], Encoding::I16, WordOrder::CDAB).unwrap(),
            Raw::Signed(-200)
        );
        assert_eq!(
            decode(&[0x38FF], Encoding::I16, WordOrder::BADC).unwrap(),
            Raw::Signed(-200)
        );
        assert_eq!(
            decode(&[0x38FF], Encoding::U16, WordOrder::DCBA).unwrap(),
            Raw::Unsigned(0xFF38)
        );
    }

    #[test]
    fn signed_integers() {
        // -2 as i32 is 0xFFFFFFFE; low word first for CDAB.
        assert_eq!(
            decode(&[0xFFFE, 0xFFFF], Encoding::I32, WordOrder::CDAB).unwrap(),
            Raw::Signed(-2)
        );
        assert_eq!(
            decode(&[0x8000, 0, 0, 0], Encoding::I64, WordOrder::ABCD).unwrap(),
            Raw::Signed(i64::MIN)
        );
    }

    #[test]
    fn floats() {
        // 230.5 f32 = 0x43668000; 1234.5 f64 = 0x40934A0000000000.
        assert_eq!(
            decode(&[0x4366, 0x8000], Encoding::F32, WordOrder::ABCD).unwrap(),
            Raw::Float(230.5)
        );
        assert_eq!(
            decode(&[0x8000, 0x4366], Encoding::F32, WordOrder::CDAB).unwrap(),
            Raw::Float(230.5)
        );
        assert_eq!(
            decode(&[0x6643, 0x0080], Encoding::F32, WordOrder::BADC).unwrap(),
            Raw::Float(230.5)
        );
        assert_eq!(
            decode(&[0x0080, 0x6643], Encoding::F32, WordOrder::DCBA).unwrap(),
            Raw::Float(230.5)
        );
        assert_eq!(
            decode(&[0x4093, 0x4A00, 0, 0], Encoding::F64, WordOrder::ABCD).unwrap(),
            Raw::Float(1234.5)
        );
        assert_eq!(
            decode(&[0, 0, 0x004A, 0x9340], Encoding::F64, WordOrder::DCBA).unwrap(),
            Raw::Float(1234.5)
        );
    }

    #[test]
    fn sentinel_bits_are_the_big_endian_pattern() {
        assert_eq!(
            raw_bits(&[0xFFFF, 0xFFFF], Encoding::U32, WordOrder::ABCD).unwrap(),
            0xFFFF_FFFF
        );
        assert_eq!(
            raw_bits(&[0x0080], Encoding::I16, WordOrder::BADC).unwrap(),
            0x8000
        );
    }

    #[test]
    fn wrong_word_count_is_an_error() {
        assert_eq!(
            decode(&[1], Encoding::U32, WordOrder::ABCD),
            Err(DecodeError::WordCount {
                encoding: "u32",
                needed: 2,
                got: 1
            })
        );
    }

    #[test]
    fn encode_rejects_values_outside_the_type() {
        assert!(encode(65536.0, Encoding::U16, WordOrder::ABCD).is_err());
        assert!(encode(-1.0, Encoding::U32, WordOrder::ABCD).is_err());
        assert!(encode(f64::NAN, Encoding::I16, WordOrder::ABCD).is_err());
        assert_eq!(
            encode(-200.0, Encoding::I16, WordOrder::ABCD).unwrap(),
            vec![0xFF38]
        );
    }

    fn order() -> impl Strategy<Value = WordOrder> {
        prop_oneof![
            Just(WordOrder::ABCD),
            Just(WordOrder::CDAB),
            Just(WordOrder::BADC),
            Just(WordOrder::DCBA)
        ]
    }

    proptest! {
        #[test]
        fn integer_round_trip(v in any::<u32>(), s in any::<i32>(), order in order()) {
            let words = encode(f64::from(v), Encoding::U32, order).unwrap();
            prop_assert_eq!(decode(&words, Encoding::U32, order).unwrap(), Raw::Unsigned(u64::from(v)));
            let words = encode(f64::from(s), Encoding::I32, order).unwrap();
            prop_assert_eq!(decode(&words, Encoding::I32, order).unwrap(), Raw::Signed(i64::from(s)));
        }

        #[test]
        fn float_round_trip(v in any::<f32>().prop_filter("finite", |v| v.is_finite()), order in order()) {
            let words = encode(f64::from(v), Encoding::F32, order).unwrap();
            prop_assert_eq!(decode(&words, Encoding::F32, order).unwrap(), Raw::Float(f64::from(v)));
        }

        #[test]
        fn decoding_never_panics(words in proptest::collection::vec(any::<u16>(), 0..6), order in order()) {
            for encoding in [Encoding::U16, Encoding::I16, Encoding::U32, Encoding::I32,
                             Encoding::U64, Encoding::I64, Encoding::F32, Encoding::F64] {
                let result = decode(&words, encoding, order);
                prop_assert_eq!(result.is_ok(), words.len() == encoding.words());
            }
        }
    }
}
