//! Device profiles: everything model-specific about a meter, as data.
//!
//! A profile is a TOML file (the built-in ones live in `data/profiles/` and are compiled in)
//! naming the meter's serial defaults, its timing, the register blocks read in one request each,
//! and every register: where it lives, how it is encoded, how to scale it and what it means.
//! [`Profile::from_toml`] parses and checks a file into a [`Profile`] in one step, so a profile
//! in hand is always consistent: every register lies inside a block of its function, every block
//! is a legal request, every scale-factor reference resolves.
//!
//! ```toml
//! name = "sdm120"
//! model = "Eastron SDM120-Modbus"
//! source = "Eastron SDM120 Modbus protocol"
//!
//! [serial]
//! baud = 2400
//! parity = "none"
//! stop_bits = 1
//!
//! [timing]
//! timeout_ms = 500      # per request
//! delay_ms = 20         # between two requests on the bus
//! recovery_ms = 500     # listen and discard this long after a timeout or bad frame
//! retries = 2
//!
//! [[blocks]]
//! function = "input"    # 0x04; "holding" is 0x03
//! address = 0x0000      # 0-based
//! count = 80            # 1..=125
//!
//! [[registers]]
//! name = "energy_import"
//! function = "input"
//! address = 0x0048
//! encoding = "f32"      # u16 i16 u32 i32 u64 i64 f32 f64
//! order = "ABCD"        # ABCD CDAB BADC DCBA
//! scale = 1.0           # value = raw * scale * 10^scale_factor + offset
//! unit = "kWh"
//! role = "energy_import"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::encoding::{Encoding, WordOrder};
use crate::serial::{Parity, SerialSettings, StopBits};

/// The Modbus read function of a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Read holding registers, function code 0x03.
    Holding,
    /// Read input registers, function code 0x04.
    Input,
}

impl Function {
    /// The Modbus function code.
    pub fn code(self) -> u8 {
        match self {
            Function::Holding => 0x03,
            Function::Input => 0x04,
        }
    }

    /// The profile's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Function::Holding => "holding",
            Function::Input => "input",
        }
    }
}

/// What a register measures. Roles let the gateway and the simulated meter find "the import
/// energy" or "the L1 voltage" of any meter without knowing its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Active energy drawn from the grid (the counter the gateway masks).
    EnergyImport,
    /// Active energy fed into the grid.
    EnergyExport,
    /// Total active power.
    Power,
    /// Active power of phase L1.
    PowerL1,
    /// Active power of phase L2.
    PowerL2,
    /// Active power of phase L3.
    PowerL3,
    /// Line-to-neutral voltage of L1.
    VoltageL1,
    /// Line-to-neutral voltage of L2.
    VoltageL2,
    /// Line-to-neutral voltage of L3.
    VoltageL3,
    /// Current of a single-phase meter, or the total current.
    Current,
    /// Current of L1.
    CurrentL1,
    /// Current of L2.
    CurrentL2,
    /// Current of L3.
    CurrentL3,
    /// Grid frequency.
    Frequency,
    /// Total power factor.
    PowerFactor,
    /// A power-of-ten exponent other registers refer to (SunSpec `sunssf`).
    ScaleFactor,
    /// Anything else: shown by `meter read`, ignored by the gateway.
    Other,
}

impl Role {
    /// The profile's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Role::EnergyImport => "energy_import",
            Role::EnergyExport => "energy_export",
            Role::Power => "power",
            Role::PowerL1 => "power_l1",
            Role::PowerL2 => "power_l2",
            Role::PowerL3 => "power_l3",
            Role::VoltageL1 => "voltage_l1",
            Role::VoltageL2 => "voltage_l2",
            Role::VoltageL3 => "voltage_l3",
            Role::Current => "current",
            Role::CurrentL1 => "current_l1",
            Role::CurrentL2 => "current_l2",
            Role::CurrentL3 => "current_l3",
            Role::Frequency => "frequency",
            Role::PowerFactor => "power_factor",
            Role::ScaleFactor => "scale_factor",
            Role::Other => "other",
        }
    }

    /// Energy counters, whose unit must be convertible to Wh.
    pub fn is_energy(self) -> bool {
        matches!(self, Role::EnergyImport | Role::EnergyExport)
    }

    /// Roles a profile may give to at most one register.
    fn is_unique(self) -> bool {
        !matches!(self, Role::Other | Role::ScaleFactor)
    }
}

/// One contiguous range of registers read with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Holding or input registers.
    pub function: Function,
    /// First register, 0-based.
    pub address: u16,
    /// Number of registers, 1..=125.
    pub count: u16,
}

impl Block {
    /// Whether registers `[address, address + words)` lie inside this block.
    pub fn contains(&self, function: Function, address: u16, words: usize) -> bool {
        let start = usize::from(self.address);
        let end = start + usize::from(self.count);
        let address = usize::from(address);
        function == self.function && address >= start && address + words <= end
    }
}

/// One named value of the meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// Unique name within the profile.
    pub name: String,
    /// Holding or input register.
    pub function: Function,
    /// First register, 0-based.
    pub address: u16,
    /// Stored type.
    pub encoding: Encoding,
    /// Word and byte order.
    pub order: WordOrder,
    /// Multiplier from raw to physical value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Index into [`Profile::registers`] of the power-of-ten exponent register, if any.
    pub scale_factor: Option<usize>,
    /// Physical unit, e.g. "kWh", "V"; empty for unitless values.
    pub unit: String,
    /// What the register measures.
    pub role: Role,
    /// Raw bit patterns meaning "not available" (compared as an unsigned integer of the
    /// encoding's width in big-endian order).
    pub not_available: Vec<u64>,
    /// A value the register always holds (e.g. a SunSpec model id); reads that differ fail.
    pub expect: Option<f64>,
    /// Index into [`Profile::blocks`] of the block that reads this register.
    pub block: usize,
}

/// Timing of requests to one meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// Pause between the end of one exchange and the next request.
    pub delay: Duration,
    /// After a timeout or a bad frame, how long to listen and discard before the next
    /// request, so that a late answer is never taken for the next one.
    pub recovery: Duration,
    /// Extra attempts after a failed one.
    pub retries: u8,
}

/// A checked device profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Short name used on the command line, e.g. "sdm120".
    pub name: String,
    /// Vendor and model.
    pub model: String,
    /// Where the register facts come from.
    pub source: String,
    /// Serial defaults of the meter as shipped.
    pub serial: SerialSettings,
    /// Request timing.
    pub timing: Timing,
    /// Blocks, in reading order.
    pub blocks: Vec<Block>,
    /// Registers, in display order.
    pub registers: Vec<Register>,
}

impl Profile {
    /// Parses and checks a profile. `origin` names the file in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Self, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            origin: origin.to_string(),
            message: one_line_toml_error(text, &e),
        })?;
        file.check().map_err(|message| ProfileError::Invalid {
            origin: origin.to_string(),
            message,
        })
    }

    /// The register with this role, if the profile has one.
    pub fn register_with_role(&self, role: Role) -> Option<&Register> {
        self.registers.iter().find(|r| r.role == role)
    }

    /// The register with this name.
    pub fn register(&self, name: &str) -> Option<&Register> {
        self.registers.iter().find(|r| r.name == name)
    }

    /// Indices of the blocks needed to read the registers with these roles (and the scale
    /// factors they depend on).
    pub fn blocks_for_roles(&self, roles: &[Role]) -> Vec<usize> {
        let mut needed = BTreeSet::new();
        for register in self.registers.iter().filter(|r| roles.contains(&r.role)) {
            needed.insert(register.block);
            if let Some(sf) = register.scale_factor.and_then(|sf| self.registers.get(sf)) {
                needed.insert(sf.block);
            }
        }
        needed.into_iter().collect()
    }
}

/// Why a profile was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not valid TOML or not the profile schema (the message names the line).
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// Valid TOML, inconsistent profile (the message names the field).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// No built-in profile has this name.
    #[error("unknown profile {name:?}; built-in profiles: {known}")]
    Unknown { name: String, known: String },
}

/// The built-in profiles: name and TOML text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("sdm120", include_str!("../../data/profiles/sdm120.toml")),
    ("sdm630", include_str!("../../data/profiles/sdm630.toml")),
    ("abb-b23", include_str!("../../data/profiles/abb-b23.toml")),
    ("em24", include_str!("../../data/profiles/em24.toml")),
    (
        "sunspec-203",
        include_str!("../../data/profiles/sunspec-203.toml"),
    ),
];

/// Loads a built-in profile by name.
pub fn built_in(name: &str) -> Result<Arc<Profile>, ProfileError> {
    let Some((file, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
        return Err(ProfileError::Unknown {
            name: name.to_string(),
            known: BUILT_IN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    Profile::from_toml(&format!("data/profiles/{file}.toml"), text).map(Arc::new)
}

// ---- The file schema, as serde sees it. Everything is checked in `check`. ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    model: String,
    #[serde(default)]
    source: String,
    serial: SerialFile,
    #[serde(default)]
    timing: TimingFile,
    blocks: Vec<BlockFile>,
    registers: Vec<RegisterFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialFile {
    baud: u32,
    #[serde(default)]
    parity: Parity,
    #[serde(default)]
    stop_bits: StopBits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingFile {
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_delay_ms")]
    delay_ms: u64,
    recovery_ms: Option<u64>,
    #[serde(default = "default_retries")]
    retries: u8,
}

fn default_timeout_ms() -> u64 {
    500
}
fn default_delay_ms() -> u64 {
    20
}
fn default_retries() -> u8 {
    2
}

impl Default for TimingFile {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            delay_ms: default_delay_ms(),
            recovery_ms: None,
            retries: default_retries(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockFile {
    function: Function,
    address: u16,
    count: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFile {
    name: String,
    function: Function,
    address: u16,
    encoding: Encoding,
    #[serde(default)]
    order: WordOrder,
    #[serde(default = "one")]
    scale: f64,
    #[serde(default)]
    offset: f64,
    scale_factor: Option<String>,
    #[serde(default)]
    unit: String,
    #[serde(default = "other")]
    role: Role,
    #[serde(default)]
    not_available: Vec<u64>,
    expect: Option<f64>,
}

fn one() -> f64 {
    1.0
}
fn other() -> Role {
    Role::Other
}

/// Longest read the Modbus application protocol allows (functions 0x03 and 0x04).
pub const MAX_REGISTERS_PER_REQUEST: u16 = 125;

/// Longest timeout a profile may ask for; anything longer is a typo.
const MAX_TIMEOUT_MS: u64 = 60_000;

impl ProfileFile {
    fn check(self) -> Result<Profile, String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.serial.baud == 0 {
            return Err("serial.baud: must be positive".into());
        }
        let t = &self.timing;
        if t.timeout_ms == 0 || t.timeout_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "timing.timeout_ms: {} is outside 1..={MAX_TIMEOUT_MS}",
                t.timeout_ms
            ));
        }
        if t.delay_ms > MAX_TIMEOUT_MS || t.recovery_ms.unwrap_or(0) > MAX_TIMEOUT_MS {
            return Err(format!(
                "timing: delay_ms and recovery_ms must be at most {MAX_TIMEOUT_MS}"
            ));
        }
        if t.retries > 10 {
            return Err(format!("timing.retries: {} is more than 10", t.retries));
        }
        let timing = Timing {
            timeout: Duration::from_millis(t.timeout_ms),
            delay: Duration::from_millis(t.delay_ms),
            recovery: Duration::from_millis(t.recovery_ms.unwrap_or(t.timeout_ms)),
            retries: t.retries,
        };

        if self.blocks.is_empty() {
            return Err("blocks: a profile needs at least one block".into());
        }
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            if b.count == 0 || b.count > MAX_REGISTERS_PER_REQUEST {
                return Err(format!(
                    "blocks[{i}].count: {} is outside 1..={MAX_REGISTERS_PER_REQUEST}",
                    b.count
                ));
            }
            if usize::from(b.address) + usize::from(b.count) > 0x1_0000 {
                return Err(format!(
                    "blocks[{i}]: {} registers from {:#06x} run past address 0xffff",
                    b.count, b.address
                ));
            }
            blocks.push(Block {
                function: b.function,
                address: b.address,
                count: b.count,
            });
        }

        if self.registers.is_empty() {
            return Err("registers: a profile needs at least one register".into());
        }
        let mut names = BTreeMap::new();
        for (i, r) in self.registers.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(format!("registers[{i}].name: must not be empty"));
            }
            if names.insert(r.name.as_str(), i).is_some() {
                return Err(format!("registers[{i}].name: {:?} appears twice", r.name));
            }
        }
        let mut roles = BTreeMap::new();
        let mut registers = Vec::with_capacity(self.registers.len());
        for (i, r) in self.registers.iter().enumerate() {
            let field = |f: &str| format!("registers[{i}] ({}).{f}", r.name);
            let words = r.encoding.words();
            let Some(block) = blocks
                .iter()
                .position(|b| b.contains(r.function, r.address, words))
            else {
                return Err(format!(
                    "{}: {} register {:#06x} ({} words) lies in no {} block",
                    field("address"),
                    r.function.name(),
                    r.address,
                    words,
                    r.function.name()
                ));
            };
            if !r.scale.is_finite() || r.scale == 0.0 {
                return Err(format!("{}: must be finite and non-zero", field("scale")));
            }
            if !r.offset.is_finite() {
                return Err(format!("{}: must be finite", field("offset")));
            }
            if r.role.is_unique()
                && let Some(first) = roles.insert(r.role, i)
            {
                return Err(format!(
                    "{}: {:?} is already the role of registers[{first}]",
                    field("role"),
                    r.role
                ));
            }
            if r.role.is_energy() && energy_unit_wh(&r.unit).is_none() {
                return Err(format!(
                    "{}: an energy register needs unit \"Wh\", \"kWh\" or \"MWh\", not {:?}",
                    field("unit"),
                    r.unit
                ));
            }
            if r.role == Role::ScaleFactor && r.encoding != Encoding::I16 {
                return Err(format!(
                    "{}: a scale factor is an i16 exponent",
                    field("encoding")
                ));
            }
            let bits = 16 * words;
            if let Some(&bad) = r
                .not_available
                .iter()
                .find(|&&v| bits < 64 && v >> bits != 0)
            {
                return Err(format!(
                    "{}: {bad:#x} is wider than {bits} bits",
                    field("not_available")
                ));
            }
            let scale_factor = match &r.scale_factor {
                None => None,
                Some(name) => {
                    let Some(&sf) = names.get(name.as_str()) else {
                        return Err(format!(
                            "{}: no register is named {name:?}",
                            field("scale_factor")
                        ));
                    };
                    if self.registers[sf].role != Role::ScaleFactor {
                        return Err(format!(
                            "{}: {name:?} does not have role \"scale_factor\"",
                            field("scale_factor")
                        ));
                    }
                    Some(sf)
                }
            };
            if let Some(expect) = r.expect
                && !expect.is_finite()
            {
                return Err(format!("{}: must be finite", field("expect")));
            }
            registers.push(Register {
                name: r.name.clone(),
                function: r.function,
                address: r.address,
                encoding: r.encoding,
                order: r.order,
                scale: r.scale,
                offset: r.offset,
                scale_factor,
                unit: r.unit.clone(),
                role: r.role,
                not_available: r.not_available.clone(),
                expect: r.expect,
                block,
            });
        }
        Ok(Profile {
            name: self.name,
            model: self.model,
            source: self.source,
            serial: SerialSettings {
                baud: self.serial.baud,
                parity: self.serial.parity,
                stop_bits: self.serial.stop_bits,
            },
            timing,
            blocks,
            registers,
        })
    }
}

/// Wh per unit of an energy register's unit, or `None` if it is not an energy unit.
pub fn energy_unit_wh(unit: &str) -> Option<f64> {
    match unit {
        "Wh" => Some(1.0),
        "kWh" => Some(1e3),
        "MWh" => Some(1e6),
        _ => None,
    }
}

/// A TOML error as `line L: message`. The toml crate's own `Display` draws a snippet of the
/// file over several lines; a command's error stays on one line.
fn one_line_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_are_one_line_naming_the_line() {
        let error = |text: &str| Profile::from_toml("p.toml", text).unwrap_err().to_string();
        // The third line holds a value that is not TOML.
        assert_eq!(
            error("name = \"t\"\nmodel = \"m\"\nbaud = ?\n"),
            "p.toml: line 3: string values must be quoted, expected literal string"
        );
        // A missing table field: one line whatever the toml crate draws.
        let missing = error("model = \"m\"\n");
        assert!(!missing.contains('\n'), "{missing}");
        assert!(
            missing.starts_with("p.toml: line 1: missing field `name`"),
            "{missing}"
        );
    }

    const MINIMAL: &str = r#"
        name = "t"
        model = "test meter"
        [serial]
        baud = 9600
        [[blocks]]
        function = "holding"
        address = 0x10
        count = 4
        [[registers]]
        name = "energy"
        function = "holding"
        address = 0x10
        encoding = "u64"
        scale = 0.01
        unit = "kWh"
        role = "energy_import"
    "#;

    #[test]
    fn every_built_in_profile_parses_and_has_an_import_energy_register() {
        for (name, _) in BUILT_IN {
            let profile = built_in(name).unwrap();
            assert_eq!(profile.name, *name);
            assert!(
                profile.register_with_role(Role::EnergyImport).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn minimal_profile_gets_defaults() {
        let p = Profile::from_toml("t.toml", MINIMAL).unwrap();
        assert_eq!(p.serial.parity, Parity::None);
        assert_eq!(p.serial.stop_bits, StopBits::One);
        assert_eq!(p.timing.timeout, Duration::from_millis(500));
        assert_eq!(p.timing.recovery, p.timing.timeout);
        assert_eq!(p.registers[0].order, WordOrder::ABCD);
        assert_eq!(p.registers[0].block, 0);
    }

    fn rejected(text: &str) -> String {
        match Profile::from_toml("t.toml", text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn register_outside_every_block_is_rejected() {
        let text = MINIMAL.replace(
            "address = 0x10\n        encoding",
            "address = 0x12\n        encoding",
        );
        let msg = rejected(&text);
        assert!(
            msg.contains("registers[0] (energy).address") && msg.contains("no holding block"),
            "{msg}"
        );
    }

    #[test]
    fn register_in_a_block_of_the_other_function_is_rejected() {
        let text = MINIMAL.replace(
            "function = \"holding\"\n        address = 0x10\n        encoding",
            "function = \"input\"\n        address = 0x10\n        encoding",
        );
        assert!(rejected(&text).contains("no input block"));
    }

    #[test]
    fn oversized_block_is_rejected() {
        let text = MINIMAL.replace("count = 4", "count = 126");
        assert!(rejected(&text).contains("blocks[0].count: 126"));
    }

    #[test]
    fn block_past_the_address_space_is_rejected() {
        let text = MINIMAL.replace(
            "address = 0x10\n        count",
            "address = 0xfffe\n        count",
        );
        assert!(rejected(&text).contains("run past address 0xffff"));
    }

    #[test]
    fn unknown_fields_and_bad_enums_name_the_line() {
        let msg =
            rejected(&MINIMAL.replace("unit = \"kWh\"", "unit = \"kWh\"\n        colour = 1"));
        assert!(msg.contains("colour") && msg.contains("line"), "{msg}");
        let msg = rejected(&MINIMAL.replace("\"u64\"", "\"u128\""));
        assert!(msg.contains("u128"), "{msg}");
    }

    #[test]
    fn energy_needs_an_energy_unit() {
        assert!(
            rejected(&MINIMAL.replace("\"kWh\"", "\"kW\"")).contains("energy register needs unit")
        );
    }

    #[test]
    fn duplicate_roles_and_names_are_rejected() {
        let extra = r#"
        [[registers]]
        name = "energy"
        function = "holding"
        address = 0x10
        encoding = "u16"
        "#;
        assert!(rejected(&format!("{MINIMAL}{extra}")).contains("appears twice"));
        let extra = extra.replace("name = \"energy\"", "name = \"e2\"")
            + "unit = \"Wh\"\nrole = \"energy_import\"\n";
        assert!(rejected(&format!("{MINIMAL}{extra}")).contains("already the role"));
    }

    #[test]
    fn scale_factor_must_name_an_i16_scale_factor_register() {
        let text = MINIMAL.replace(
            "role = \"energy_import\"",
            "role = \"energy_import\"\n        scale_factor = \"missing\"",
        );
        assert!(rejected(&text).contains("no register is named \"missing\""));
    }

    #[test]
    fn sentinel_wider_than_the_register_is_rejected() {
        let text = MINIMAL.replace(
            "encoding = \"u64\"",
            "encoding = \"u16\"\n        not_available = [0x10000]",
        );
        assert!(rejected(&text).contains("wider than 16 bits"));
    }

    #[test]
    fn role_names_are_the_profile_spelling() {
        for role in [
            Role::EnergyImport,
            Role::CurrentL3,
            Role::PowerFactor,
            Role::Other,
        ] {
            let text = MINIMAL.replace("\"energy_import\"", &format!("{:?}", role.name()));
            let parsed = Profile::from_toml("t.toml", &text).map(|p| p.registers[0].role);
            assert_eq!(parsed.ok(), Some(role), "{}", role.name());
        }
    }

    #[test]
    fn unknown_built_in_lists_the_known_ones() {
        let msg = built_in("sdm999").unwrap_err().to_string();
        assert!(msg.contains("sdm120") && msg.contains("abb-b23"), "{msg}");
    }
}
