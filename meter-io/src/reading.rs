//! Turning the raw words of a profile's blocks into named physical values.

use crate::encoding::{self, Raw};
use crate::profile::{Profile, Register, Role, energy_unit_wh};

/// One register's decoded value.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Register name.
    pub name: String,
    /// Physical unit.
    pub unit: String,
    /// What it measures.
    pub role: Role,
    /// The raw value before scaling.
    pub raw: Raw,
    /// The physical value, or `None` when the meter reports "not available".
    pub value: Option<f64>,
    /// The step between two integer values (scale times the power of ten), for display with
    /// the right number of decimals; `None` for floats.
    pub resolution: Option<f64>,
}

impl Value {
    /// The value with as many decimals as its resolution carries ("n/a" if unavailable).
    pub fn display(&self) -> String {
        let Some(v) = self.value else {
            return "n/a".to_string();
        };
        match (self.raw, self.resolution) {
            // Floats: the shortest text that reads back to the same float, as an f32 when the
            // value is one (f32 registers), else as the f64 it is.
            (Raw::Float(_), _) | (_, None) => {
                if f64::from(v as f32) == v {
                    format!("{}", v as f32)
                } else {
                    format!("{v}")
                }
            }
            (_, Some(step)) => {
                let decimals = (-step.abs().log10()).ceil().clamp(0.0, 9.0) as usize;
                format!("{v:.decimals$}")
            }
        }
    }
}

/// Why words could not be turned into values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A block's answer does not have the block's register count.
    #[error("block at {address:#06x} has {got} registers, expected {expected}")]
    BlockLength {
        address: u16,
        expected: usize,
        got: usize,
    },
    /// A block index the profile does not have.
    #[error("the profile has no block {0}")]
    NoSuchBlock(usize),
    /// A register the profile pins to a value (e.g. a SunSpec model id) holds another one:
    /// probably the wrong profile or the wrong base address.
    #[error(
        "register {name} is {found}, the profile expects {expected}: wrong profile or address?"
    )]
    Unexpected {
        name: String,
        found: f64,
        expected: f64,
    },
    /// The energy register is missing from the profile or reports "not available".
    #[error("energy register {0} is not available")]
    EnergyUnavailable(String),
    /// The energy value is negative, not finite or too large for a Wh counter.
    #[error("energy register {name} holds {value} {unit}, which is no meter reading")]
    EnergyInvalid {
        name: String,
        value: f64,
        unit: String,
    },
}

/// Words read from some of a profile's blocks, indexed like [`Profile::blocks`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockWords {
    words: Vec<Option<Vec<u16>>>,
}

impl BlockWords {
    /// Room for every block of `profile`, none read yet.
    pub fn new(profile: &Profile) -> Self {
        Self {
            words: vec![None; profile.blocks.len()],
        }
    }

    /// Stores the answer for block `index`, checking its length.
    pub fn insert(
        &mut self,
        profile: &Profile,
        index: usize,
        words: Vec<u16>,
    ) -> Result<(), ValueError> {
        let Some(block) = profile.blocks.get(index) else {
            return Err(ValueError::NoSuchBlock(index));
        };
        if index >= self.words.len() {
            return Err(ValueError::NoSuchBlock(index));
        }
        if words.len() != usize::from(block.count) {
            return Err(ValueError::BlockLength {
                address: block.address,
                expected: usize::from(block.count),
                got: words.len(),
            });
        }
        self.words[index] = Some(words);
        Ok(())
    }

    /// The words of one register, if its block was read.
    fn register_words<'a>(&'a self, profile: &Profile, register: &Register) -> Option<&'a [u16]> {
        let block = profile.blocks.get(register.block)?;
        let words = self.words.get(register.block)?.as_deref()?;
        let start = usize::from(register.address.checked_sub(block.address)?);
        words.get(start..start + register.encoding.words())
    }
}

/// The physical value of a raw register value under a power-of-ten `exponent` (from its
/// scale-factor register, 0 without one). The simulated meter uses the same function, so a
/// counter it serves and the reader's conversion agree to the last bit.
pub fn scaled(register: &Register, raw: f64, exponent: i32) -> f64 {
    raw * (register.scale * 10f64.powi(exponent)) + register.offset
}

/// An energy value in the register's unit as whole Wh (rounded to the nearest), or `None` if
/// it is negative, not finite, not an energy unit or beyond 2^53 Wh (where f64 stops counting
/// single Wh).
pub fn to_wh(value: f64, unit: &str) -> Option<u64> {
    let wh = (value * energy_unit_wh(unit)?).round();
    (wh.is_finite() && (0.0..=9_007_199_254_740_992.0).contains(&wh)).then_some(wh as u64)
}

/// Decodes one register: raw value, sentinel check, scale factor, scale and offset.
/// Returns `None` when its block was not read.
pub fn decode_register(
    profile: &Profile,
    words: &BlockWords,
    register: &Register,
) -> Option<Value> {
    let w = words.register_words(profile, register)?;
    // The profile check guarantees the slice has the encoding's width, so neither call fails;
    // a failure would only mean "not available".
    let raw = encoding::decode(w, register.encoding, register.order).ok()?;
    let bits = encoding::raw_bits(w, register.encoding, register.order).ok()?;
    let mut available = !register.not_available.contains(&bits);
    if let Raw::Float(f) = raw {
        available &= f.is_finite();
    }
    let mut exponent = 0i32;
    if let Some(sf) = register.scale_factor {
        match profile
            .registers
            .get(sf)
            .and_then(|sf| decode_register(profile, words, sf))
        {
            Some(Value { value: Some(e), .. }) if (-10.0..=10.0).contains(&e) => {
                exponent = e as i32
            }
            // A missing, unavailable or absurd scale factor makes the value unusable.
            _ => available = false,
        }
    }
    let step = register.scale * 10f64.powi(exponent);
    let value = available.then(|| scaled(register, raw.as_f64(), exponent));
    Some(Value {
        name: register.name.clone(),
        unit: register.unit.clone(),
        role: register.role,
        raw,
        value,
        resolution: (!register.encoding.is_float()).then_some(step),
    })
}

/// Decodes every register whose block was read, in profile order, and checks pinned values.
pub fn decode_all(profile: &Profile, words: &BlockWords) -> Result<Vec<Value>, ValueError> {
    let mut out = Vec::with_capacity(profile.registers.len());
    for register in &profile.registers {
        let Some(value) = decode_register(profile, words, register) else {
            continue;
        };
        if let (Some(expected), Some(found)) = (register.expect, value.value)
            && found != expected
        {
            return Err(ValueError::Unexpected {
                name: register.name.clone(),
                found,
                expected,
            });
        }
        out.push(value);
    }
    Ok(out)
}

/// The energy counter with this role, in whole Wh (rounded to the nearest Wh).
pub fn energy_wh(profile: &Profile, words: &BlockWords, role: Role) -> Result<u64, ValueError> {
    let Some(register) = profile.register_with_role(role) else {
        return Err(ValueError::EnergyUnavailable(format!("{role:?}")));
    };
    let value = decode_register(profile, words, register)
        .and_then(|v| v.value)
        .ok_or_else(|| ValueError::EnergyUnavailable(register.name.clone()))?;
    to_wh(value, &register.unit).ok_or_else(|| ValueError::EnergyInvalid {
        name: register.name.clone(),
        value,
        unit: register.unit.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::built_in;

    /// Decodes hand-written answer bytes (as they appear in the RTU frame, after the byte count)
    /// for each block of a built-in profile.
    fn words_from_hex(hex_blocks: &[(usize, &str)], profile: &Profile) -> BlockWords {
        let mut words = BlockWords::new(profile);
        for (index, hex) in hex_blocks {
            let bytes = hex::decode(hex.replace(' ', "")).unwrap();
            let w: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            words.insert(profile, *index, w).unwrap();
        }
        words
    }

    fn value(values: &[Value], name: &str) -> Option<f64> {
        values.iter().find(|v| v.name == name).unwrap().value
    }

    /// Scaled values are products of binary floats, so compare them to a tolerance.
    fn assert_near(values: &[Value], name: &str, expected: f64) {
        let got = value(values, name).unwrap_or(f64::NAN);
        assert!((got - expected).abs() < 1e-9, "{name}: {got} != {expected}");
    }

    /// A block of `count` zero registers with some registers overwritten: (offset, bytes).
    fn block_hex(count: usize, patches: &[(usize, &str)]) -> String {
        let mut bytes = vec![0u8; 2 * count];
        for (offset, hex) in patches {
            let b = hex::decode(hex.replace(' ', "")).unwrap();
            bytes[2 * offset..2 * offset + b.len()].copy_from_slice(&b);
        }
        hex::encode(bytes)
    }

    #[test]
    fn sdm120_float_registers() {
        let p = built_in("sdm120").unwrap();
        // 230.5 V = 0x43668000, 1234.5 kWh = 0x449A5000, 0.25 kWh = 0x3E800000.
        let hex = block_hex(
            80,
            &[
                (0x00, "4366 8000"),
                (0x48, "449A 5000"),
                (0x4A, "3E80 0000"),
            ],
        );
        let words = words_from_hex(&[(0, &hex)], &p);
        let values = decode_all(&p, &words).unwrap();
        assert_eq!(value(&values, "voltage"), Some(230.5));
        assert_eq!(value(&values, "import_active_energy"), Some(1234.5));
        assert_eq!(
            energy_wh(&p, &words, Role::EnergyImport).unwrap(),
            1_234_500
        );
        assert_eq!(energy_wh(&p, &words, Role::EnergyExport).unwrap(), 250);
    }

    #[test]
    fn sdm630_float_registers() {
        let p = built_in("sdm630").unwrap();
        // 50.0 Hz = 0x42480000 at 0x46; 10.0 kWh = 0x41200000 at 0x48.
        let hex = block_hex(76, &[(0x46, "4248 0000"), (0x48, "4120 0000")]);
        let words = words_from_hex(&[(0, &hex)], &p);
        let values = decode_all(&p, &words).unwrap();
        assert_eq!(value(&values, "frequency"), Some(50.0));
        assert_eq!(energy_wh(&p, &words, Role::EnergyImport).unwrap(), 10_000);
    }

    #[test]
    fn abb_b23_u64_hundredths_of_kwh() {
        let p = built_in("abb-b23").unwrap();
        // 0x00000000_0001E240 = 123456 -> 1234.56 kWh = 1234560 Wh.
        // Export all ones: not available.
        let energy = "0000 0000 0001 E240 FFFF FFFF FFFF FFFF";
        // Voltage L1 0x0000_08FC = 2300 -> 230.0 V; power total 0xFFFF_FC18 = -1000 -> -10 W;
        // frequency 0x1388 = 5000 -> 50.00 Hz; PF 0x03E8 = 1000 -> 1.000.
        let inst = block_hex(
            62,
            &[
                (0x00, "0000 08FC"),
                (0x14, "FFFF FC18"),
                (0x2C, "1388"),
                (0x3A, "03E8"),
            ],
        );
        let words = words_from_hex(&[(0, energy), (1, &inst)], &p);
        let values = decode_all(&p, &words).unwrap();
        assert_eq!(
            energy_wh(&p, &words, Role::EnergyImport).unwrap(),
            1_234_560
        );
        assert_eq!(value(&values, "active_export"), None);
        assert!(matches!(
            energy_wh(&p, &words, Role::EnergyExport),
            Err(ValueError::EnergyUnavailable(_))
        ));
        assert_near(&values, "voltage_l1_n", 230.0);
        assert_near(&values, "active_power_total", -10.0);
        assert_near(&values, "frequency", 50.0);
        assert_near(&values, "power_factor_total", 1.0);
    }

    #[test]
    fn em24_int32_low_word_first() {
        let p = built_in("em24").unwrap();
        // kWh(+) TOT 123456.7 kWh = 1234567 = 0x0012D687: low word D687 first, then 0012.
        // V L1 230.1 V = 2301 = 0x000008FD -> "08FD 0000"; W sys -50.0 W = -500 = 0xFFFFFE0C
        // -> "FE0C FFFF"; Hz 49.9 = 499 = 0x01F3.
        let b0 = block_hex(
            54,
            &[
                (0x00, "08FD 0000"),
                (0x28, "FE0C FFFF"),
                (0x33, "01F3"),
                (0x34, "D687 0012"),
            ],
        );
        let words = words_from_hex(&[(0, &b0), (1, "0005 0000")], &p);
        let values = decode_all(&p, &words).unwrap();
        assert_near(&values, "v_l1_n", 230.1);
        assert_near(&values, "w_sys", -50.0);
        assert_near(&values, "hz", 49.9);
        assert_eq!(
            energy_wh(&p, &words, Role::EnergyImport).unwrap(),
            123_456_700
        );
        assert_eq!(energy_wh(&p, &words, Role::EnergyExport).unwrap(), 500);
    }

    #[test]
    fn sunspec_203_scale_factors() {
        let p = built_in("sunspec-203").unwrap();
        // ID 203 = 0x00CB, L 105 = 0x0069; PhVphA 2301 with V_SF -1 -> 230.1 V;
        // W 1500 with W_SF 1 (0x0001) -> 15000 W; TotWhImp 0x00BC614E = 12345678 with
        // TotWh_SF 0 -> 12345678 Wh; TotWhExp 0 = not implemented.
        let b = block_hex(
            55,
            &[
                (0, "00CB 0069"),
                (8, "08FD"),
                (15, "FFFF"),
                (18, "05DC"),
                (22, "0001"),
                (46, "00BC 614E"),
                (54, "0000"),
            ],
        );
        let words = words_from_hex(&[(0, &b)], &p);
        let values = decode_all(&p, &words).unwrap();
        assert_near(&values, "PhVphA", 230.1);
        assert_near(&values, "W", 15000.0);
        assert_eq!(
            energy_wh(&p, &words, Role::EnergyImport).unwrap(),
            12_345_678
        );
        assert!(energy_wh(&p, &words, Role::EnergyExport).is_err());
        // The current's scale factor A_SF is 0x0000 here, so the value is usable...
        assert_eq!(value(&values, "A"), Some(0.0));
        // ...but a value whose scale factor is "not implemented" (0x8000) is not.
        let b = block_hex(55, &[(0, "00CB 0069"), (18, "05DC"), (22, "8000")]);
        let words = words_from_hex(&[(0, &b)], &p);
        assert_eq!(value(&decode_all(&p, &words).unwrap(), "W"), None);
    }

    #[test]
    fn sunspec_wrong_model_id_is_reported() {
        let p = built_in("sunspec-203").unwrap();
        // Model 201 (single phase) where 203 was expected.
        let b = block_hex(55, &[(0, "00C9 0069")]);
        let words = words_from_hex(&[(0, &b)], &p);
        assert!(matches!(
            decode_all(&p, &words),
            Err(ValueError::Unexpected { found, expected, .. }) if found == 201.0 && expected == 203.0
        ));
    }

    #[test]
    fn display_uses_the_resolution() {
        let v = |raw, value, resolution| Value {
            name: "x".into(),
            unit: String::new(),
            role: Role::Other,
            raw,
            value: Some(value),
            resolution,
        };
        assert_eq!(
            v(Raw::Signed(2301), 230.10000000000002, Some(0.1)).display(),
            "230.1"
        );
        assert_eq!(
            v(Raw::Unsigned(123456), 1234.56, Some(0.01)).display(),
            "1234.56"
        );
        assert_eq!(v(Raw::Unsigned(7), 7000.0, Some(1000.0)).display(), "7000");
        assert_eq!(v(Raw::Float(230.5), 230.5, None).display(), "230.5");
        // f32 0.1 widened to f64 is 0.10000000149011612; shown as the f32 it was.
        assert_eq!(
            v(Raw::Float(0.1f32 as f64), 0.1f32 as f64, None).display(),
            "0.1"
        );
        let mut na = v(Raw::Unsigned(0), 0.0, None);
        na.value = None;
        assert_eq!(na.display(), "n/a");
    }

    #[test]
    fn negative_energy_is_invalid() {
        let p = built_in("em24").unwrap();
        let b0 = block_hex(54, &[(0x34, "FFFF FFFF")]);
        let words = words_from_hex(&[(0, &b0), (1, "0000 0000")], &p);
        assert!(matches!(
            energy_wh(&p, &words, Role::EnergyImport),
            Err(ValueError::EnergyInvalid { .. })
        ));
    }

    #[test]
    fn block_of_the_wrong_length_is_rejected() {
        let p = built_in("em24").unwrap();
        let mut words = BlockWords::new(&p);
        assert_eq!(
            words.insert(&p, 1, vec![0; 3]),
            Err(ValueError::BlockLength {
                address: 0x4E,
                expected: 2,
                got: 3
            })
        );
    }
}
