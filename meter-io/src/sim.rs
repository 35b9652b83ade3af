//! A simulated meter bus: `tokio-modbus`'s RTU server answering one or more meters' registers
//! from their profiles, with energy growing along the BDEW H25 household load profile, and
//! faults injected on request.
//!
//! ```text
//!   line (port, pty, pipe) <-> relay <-> pty pair <-> tokio-modbus RTU server <-> SimBus
//! ```
//!
//! The RTU server only speaks to a [`tokio_serial::SerialStream`], so it runs on one end of an
//! in-process pseudo-terminal pair and a relay copies bytes between the other end and the
//! actual line. The relay is where line faults happen: it can garble an answer's CRC or put
//! noise in front of it, as a bad RS-485 line would. Silence, exceptions and late answers are
//! decided per request by [`SimBus`], the server's service.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::loadprofile::H25;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialStream;

use crate::client::UnitId;
use crate::encoding::{self, Encoding};
use crate::profile::{Function, Profile, Register, Role, energy_unit_wh};
use crate::reading::{scaled, to_wh};
use crate::rtu;

/// A fault the simulated meter injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No answer at all.
    Silence,
    /// A Modbus exception with this code.
    Exception(u8),
    /// The answer with its last CRC byte flipped.
    Corrupt,
    /// A few garbage bytes on the line, then the good answer.
    Noise,
    /// The good answer, this late.
    Late(Duration),
}

/// Which requests to one unit a fault hits (counted from 1 per unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Only the n-th request.
    Once(u64),
    /// Every n-th request.
    Every(u64),
}

/// A fault and when it strikes. Written `KIND@N` (the N-th request only) or `KIND%N` (every
/// N-th request), with KIND one of `silence`, `exception:CODE`, `corrupt`, `noise`, `late:MS`;
/// e.g. `silence@3`, `exception:6%4`, `corrupt%10`, `late:800@1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// When.
    pub schedule: Schedule,
}

impl FaultRule {
    fn hits(&self, request: u64) -> bool {
        match self.schedule {
            Schedule::Once(n) => request == n,
            Schedule::Every(n) => n > 0 && request.is_multiple_of(n),
        }
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "fault {s:?}: {why}; expected KIND@N or KIND%N with KIND silence, \
                 exception:CODE, corrupt, noise or late:MS"
            )
        };
        let (kind, schedule) = if let Some((kind, n)) = s.split_once('@') {
            (kind, n.parse().ok().filter(|&n| n > 0).map(Schedule::Once))
        } else if let Some((kind, n)) = s.split_once('%') {
            (kind, n.parse().ok().filter(|&n| n > 0).map(Schedule::Every))
        } else {
            return Err(bad("no @N or %N"));
        };
        let schedule = schedule.ok_or_else(|| bad("N must be a positive integer"))?;
        let (name, arg) = kind.split_once(':').unwrap_or((kind, ""));
        let fault = match (name, arg) {
            ("silence", "") => Fault::Silence,
            ("corrupt", "") => Fault::Corrupt,
            ("noise", "") => Fault::Noise,
            ("exception", code) => Fault::Exception(
                code.parse()
                    .ok()
                    .filter(|&c| c > 0 && c < 0x80)
                    .ok_or_else(|| bad("exception code must be 1..=127"))?,
            ),
            ("late", ms) => Fault::Late(Duration::from_millis(
                ms.parse()
                    .map_err(|_| bad("late needs a delay in milliseconds"))?,
            )),
            _ => return Err(bad("unknown kind")),
        };
        Ok(FaultRule { fault, schedule })
    }
}

/// One simulated meter.
#[derive(Debug, Clone)]
pub struct SimMeterConfig {
    /// Its unit id on the bus.
    pub unit: UnitId,
    /// Its registers.
    pub profile: Arc<Profile>,
    /// Annual consumption the H25 profile is scaled to.
    pub annual_kwh: f64,
    /// Import counter at the start, in Wh.
    pub import_wh: f64,
    /// Export counter (constant: the household has no generation), in Wh.
    pub export_wh: f64,
    /// Injected faults.
    pub faults: Vec<FaultRule>,
}

/// The simulated bus: its meters and clock.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Meters, at distinct unit ids.
    pub meters: Vec<SimMeterConfig>,
    /// How much faster than real time simulated time runs (900 turns a second into 15 min).
    pub speed: f64,
    /// Simulated time at start, ms since the Unix epoch (default: now).
    pub start_ms: Option<u64>,
}

/// An answer that carried a meter's import counter: what it said and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedEnergy {
    /// The meter.
    pub unit: u8,
    /// Real time of the answer, ms since the Unix epoch.
    pub at_ms: u64,
    /// Simulated time of the reading, ms since the Unix epoch.
    pub sim_ms: u64,
    /// The counter as the answer encodes it, converted to whole Wh the way a reader does.
    pub import_wh: u64,
}

/// Why the simulated bus could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Two meters share a unit id.
    #[error("two simulated meters use unit id {0}")]
    DuplicateUnit(u8),
    /// Speed is not a positive finite number.
    #[error("speed must be positive and finite, not {0}")]
    Speed(f64),
    /// A counter start value is not a usable number of Wh.
    #[error("unit {0}: start counters and annual consumption must be finite and non-negative")]
    Counters(u8),
    /// The in-process pseudo-terminal could not be opened.
    #[error("pseudo-terminal: {0}")]
    Pty(String),
    /// The line failed.
    #[error("line: {0}")]
    Line(#[from] std::io::Error),
}

struct MeterState {
    config: SimMeterConfig,
    requests: u64,
    sim_ms: u64,
    import_wh: f64,
}

struct Shared {
    meters: BTreeMap<u8, MeterState>,
    speed: f64,
    start_real: std::time::Instant,
    start_sim_ms: u64,
    /// Answers produced so far (numbering frames for the relay).
    answers: u64,
    /// Line faults the relay applies to answer number n.
    mangles: VecDeque<(u64, Fault)>,
    served: Option<mpsc::UnboundedSender<ServedEnergy>>,
}

/// The simulated meters behind the RTU server. Clones share state.
#[derive(Clone)]
pub struct SimBus {
    shared: Arc<Mutex<Shared>>,
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SimBus {
    /// Builds the meters. `served` receives one [`ServedEnergy`] per answer carrying an import
    /// counter (for checking a gateway against the meter).
    pub fn new(
        config: SimConfig,
        served: Option<mpsc::UnboundedSender<ServedEnergy>>,
    ) -> Result<Self, SimError> {
        if !(config.speed.is_finite() && config.speed > 0.0) {
            return Err(SimError::Speed(config.speed));
        }
        let start_sim_ms = config.start_ms.unwrap_or_else(unix_ms_now);
        let mut meters = BTreeMap::new();
        for meter in config.meters {
            let unit = meter.unit.get();
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !(ok(meter.import_wh) && ok(meter.export_wh) && ok(meter.annual_kwh)) {
                return Err(SimError::Counters(unit));
            }
            let state = MeterState {
                import_wh: meter.import_wh,
                config: meter,
                requests: 0,
                sim_ms: start_sim_ms,
            };
            if meters.insert(unit, state).is_some() {
                return Err(SimError::DuplicateUnit(unit));
            }
        }
        Ok(SimBus {
            shared: Arc::new(Mutex::new(Shared {
                meters,
                speed: config.speed,
                start_real: std::time::Instant::now(),
                start_sim_ms,
                answers: 0,
                mangles: VecDeque::new(),
                served,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The import counter of `unit` now, in Wh (unquantised).
    pub fn import_wh(&self, unit: u8) -> Option<f64> {
        let mut shared = self.lock();
        let now = shared.sim_now();
        let meter = shared.meters.get_mut(&unit)?;
        meter.advance(now);
        Some(meter.import_wh)
    }

    /// Serves the bus on `line` until the line fails or closes.
    pub async fn serve<T>(&self, mut line: T) -> Result<(), SimError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        loop {
            let (server_end, relay_end) =
                SerialStream::pair().map_err(|e| SimError::Pty(e.to_string()))?;
            let server = tokio_modbus::server::rtu::Server::new(server_end);
            tokio::select! {
                // The server gives up on a request it cannot decode (line noise); a real meter
                // would ignore it and keep listening, so start a fresh server.
                _ = server.serve_forever(self.clone()) => continue,
                result = relay(&mut line, relay_end, self) => return result.map_err(SimError::Line),
            }
        }
    }

    /// Answers one request, or decides to stay silent (`Ok(None)`).
    fn answer(&self, request: SlaveRequest<'static>) -> Answer {
        let mut shared = self.lock();
        let now = shared.sim_now();
        let unit = request.slave;
        let Some(meter) = shared.meters.get_mut(&unit) else {
            // Another unit's request (or a broadcast): not for us.
            return Answer::Silent;
        };
        meter.requests += 1;
        let fault = meter
            .config
            .faults
            .iter()
            .find(|rule| rule.hits(meter.requests))
            .map(|rule| rule.fault);
        let (function, address, count) = match request.request {
            Request::ReadHoldingRegisters(a, c) => (Function::Holding, a, c),
            Request::ReadInputRegisters(a, c) => (Function::Input, a, c),
            _ => return Answer::Exception(ExceptionCode::IllegalFunction),
        };
        match fault {
            Some(Fault::Silence) => return Answer::Silent,
            Some(Fault::Exception(code)) => return Answer::Exception(ExceptionCode::new(code)),
            _ => {}
        }
        meter.advance(now);
        let image = match meter.registers(function, address, count) {
            Ok(image) => image,
            Err(code) => return Answer::Exception(code),
        };
        let served = image.import_wh.map(|import_wh| ServedEnergy {
            unit,
            at_ms: unix_ms_now(),
            sim_ms: meter.sim_ms,
            import_wh,
        });
        let response = match function {
            Function::Holding => Response::ReadHoldingRegisters(image.words),
            Function::Input => Response::ReadInputRegisters(image.words),
        };
        shared.answers += 1;
        let number = shared.answers;
        let mut delay = Duration::ZERO;
        match fault {
            Some(fault @ (Fault::Corrupt | Fault::Noise)) => {
                shared.mangles.push_back((number, fault));
            }
            Some(Fault::Late(d)) => delay = d,
            _ => {}
        }
        if let (Some(tx), Some(served)) = (&shared.served, served) {
            // Nobody listening any more is fine.
            let _ = tx.send(served);
        }
        Answer::Respond(response, delay)
    }
}

enum Answer {
    Silent,
    Exception(ExceptionCode),
    Respond(Response, Duration),
}

impl tokio_modbus::server::Service for SimBus {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let answer = self.answer(request);
        Box::pin(async move {
            match answer {
                Answer::Silent => Ok(None),
                Answer::Exception(code) => Err(code),
                Answer::Respond(response, delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok(Some(response))
                }
            }
        })
    }
}

impl Shared {
    fn sim_now(&self) -> u64 {
        let elapsed = self.start_real.elapsed().as_secs_f64() * 1000.0 * self.speed;
        self.start_sim_ms.saturating_add(elapsed as u64)
    }
}

/// Registers of one answer.
struct Image {
    words: Vec<u16>,
    /// The import counter as encoded in this answer, in Wh, if the answer carries all of it.
    import_wh: Option<u64>,
}

/// Quarter hour length in ms.
const QUARTER_MS: u64 = 900_000;

impl MeterState {
    /// Runs the import counter forward to simulated time `now` along the H25 profile.
    fn advance(&mut self, now: u64) {
        let h25 = H25::get();
        while self.sim_ms < now {
            let quarter_end = (self.sim_ms / QUARTER_MS + 1) * QUARTER_MS;
            let step_end = quarter_end.min(now);
            let wh_in_quarter = h25.wh_at(self.sim_ms / 1000, self.config.annual_kwh);
            self.import_wh += wh_in_quarter * (step_end - self.sim_ms) as f64 / QUARTER_MS as f64;
            self.sim_ms = step_end;
        }
    }

    /// Average power in the current quarter hour, W.
    fn power_w(&self) -> f64 {
        H25::get().wh_at(self.sim_ms / 1000, self.config.annual_kwh) * 4.0
    }

    /// The physical value of a register role now.
    fn physical(&self, register: &Register) -> f64 {
        let profile = &self.config.profile;
        let power = self.power_w();
        let phases = [Role::PowerL1, Role::PowerL2, Role::PowerL3]
            .iter()
            .filter(|&&r| profile.register_with_role(r).is_some())
            .count()
            .max(1) as f64;
        let voltage = 230.0;
        match register.role {
            Role::EnergyImport => self.import_wh / energy_unit_wh(&register.unit).unwrap_or(1.0),
            Role::EnergyExport => {
                self.config.export_wh / energy_unit_wh(&register.unit).unwrap_or(1.0)
            }
            Role::Power => power,
            Role::PowerL1 | Role::PowerL2 | Role::PowerL3 => power / phases,
            Role::VoltageL1 | Role::VoltageL2 | Role::VoltageL3 => voltage,
            Role::Current => power / voltage,
            Role::CurrentL1 | Role::CurrentL2 | Role::CurrentL3 => power / phases / voltage,
            Role::Frequency => 50.0,
            Role::PowerFactor => 0.98,
            Role::ScaleFactor | Role::Other => register.expect.unwrap_or(0.0),
        }
    }

    /// The raw integer (or float) for a physical value under a power-of-ten exponent.
    fn raw_for(register: &Register, physical: f64, exponent: i32) -> f64 {
        let raw = (physical - register.offset) / (register.scale * 10f64.powi(exponent));
        if register.encoding.is_float() {
            raw
        } else if register.role.is_energy() {
            // Counters show what has been consumed, never more. The tiny nudge keeps a value
            // like 999999999.9999999 (1e6 / 0.001 in binary floats) from losing a unit.
            (raw + raw.abs() * 1e-12 + 1e-9).floor()
        } else {
            raw.round()
        }
    }

    /// The exponent for scale-factor register `sf`: the finest that lets every value scaled by
    /// it fit its encoding.
    fn exponent_for(&self, sf: usize) -> i32 {
        let profile = &self.config.profile;
        let dependents: Vec<&Register> = profile
            .registers
            .iter()
            .filter(|r| r.scale_factor == Some(sf))
            .collect();
        (-3..=9)
            .find(|&e| {
                dependents.iter().all(|r| {
                    let raw = Self::raw_for(r, self.physical(r), e);
                    encoding::encode(raw, r.encoding, r.order).is_ok()
                })
            })
            .unwrap_or(0)
    }

    /// The words of registers `[address, address + count)` of `function`, or the exception a
    /// meter gives for addresses it does not have.
    fn registers(
        &self,
        function: Function,
        address: u16,
        count: u16,
    ) -> Result<Image, ExceptionCode> {
        let profile = &self.config.profile;
        let start = usize::from(address);
        let end = start + usize::from(count);
        let covered = (start..end).all(|a| {
            profile.blocks.iter().any(|b| {
                b.function == function
                    && a >= usize::from(b.address)
                    && a < usize::from(b.address) + usize::from(b.count)
            })
        });
        if count == 0 || !covered {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let mut words = vec![0u16; usize::from(count)];
        let mut import_wh = None;
        let exponents: BTreeMap<usize, i32> = profile
            .registers
            .iter()
            .enumerate()
            .filter(|(_, r)| r.role == Role::ScaleFactor)
            .map(|(i, _)| (i, self.exponent_for(i)))
            .collect();
        for (index, register) in profile.registers.iter().enumerate() {
            if register.function != function {
                continue;
            }
            let exponent = register
                .scale_factor
                .and_then(|sf| exponents.get(&sf).copied())
                .unwrap_or(0);
            let encoded = if register.role == Role::ScaleFactor {
                let e = exponents.get(&index).copied().unwrap_or(0);
                encoding::encode(f64::from(e), Encoding::I16, register.order)
            } else {
                let raw = Self::raw_for(register, self.physical(register), exponent);
                encoding::encode(raw, register.encoding, register.order)
            };
            // A value that does not fit shows as the register's "not available" pattern.
            let reg_words = match encoded {
                Ok(w) => w,
                Err(_) => match register.not_available.first() {
                    Some(&bits) => {
                        let n = register.encoding.words();
                        (0..n)
                            .map(|i| (bits >> (16 * (n - 1 - i))) as u16)
                            .collect()
                    }
                    None => vec![0; register.encoding.words()],
                },
            };
            let reg_start = usize::from(register.address);
            let reg_end = reg_start + reg_words.len();
            for (i, word) in reg_words.iter().enumerate() {
                let a = reg_start + i;
                if (start..end).contains(&a) {
                    words[a - start] = *word;
                }
            }
            if register.role == Role::EnergyImport && reg_start >= start && reg_end <= end {
                import_wh = encoding::decode(&reg_words, register.encoding, register.order)
                    .ok()
                    .and_then(|raw| {
                        to_wh(scaled(register, raw.as_f64(), exponent), &register.unit)
                    });
            }
        }
        Ok(Image { words, import_wh })
    }
}

/// Bytes a noisy line puts before an answer. Chosen so that a reader that resynchronises by
/// dropping bytes finds the answer behind them.
const NOISE: [u8; 3] = [0xFF, 0xFF, 0xFF];

/// Copies requests from the line to the server and answers back, applying line faults.
async fn relay<T>(line: &mut T, mut server: SerialStream, bus: &SimBus) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut from_line = [0u8; rtu::MAX_FRAME_LEN];
    let mut from_server = [0u8; rtu::MAX_FRAME_LEN];
    let mut pending: Vec<u8> = Vec::new();
    let mut answers_sent = 0u64;
    loop {
        tokio::select! {
            n = line.read(&mut from_line) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                server.write_all(&from_line[..n]).await?;
            }
            n = server.read(&mut from_server) => {
                let n = n?;
                pending.extend_from_slice(&from_server[..n]);
                // Forward whole answers, so a fault hits exactly the answer it was meant for.
                while let Some(len) = rtu::response_frame_len(&pending) {
                    if pending.len() < len {
                        break;
                    }
                    let mut frame: Vec<u8> = pending.drain(..len).collect();
                    // Exceptions are not numbered: only register answers can be mangled.
                    if frame.get(1).is_some_and(|&f| f < 0x80) {
                        answers_sent += 1;
                    }
                    let fault = {
                        let mut shared = bus.lock();
                        while shared.mangles.front().is_some_and(|&(n, _)| n < answers_sent) {
                            shared.mangles.pop_front();
                        }
                        match shared.mangles.front() {
                            Some(&(n, fault)) if n == answers_sent && frame[1] < 0x80 => {
                                shared.mangles.pop_front();
                                Some(fault)
                            }
                            _ => None,
                        }
                    };
                    match fault {
                        Some(Fault::Corrupt) => {
                            if let Some(last) = frame.last_mut() {
                                *last ^= 0xFF;
                            }
                        }
                        Some(Fault::Noise) => {
                            frame.splice(0..0, NOISE);
                        }
                        _ => {}
                    }
                    line.write_all(&frame).await?;
                    line.flush().await?;
                }
                if pending.len() >= 3 && rtu::response_frame_len(&pending).is_none() {
                    // Not an answer the relay understands: pass it on untouched.
                    line.write_all(&pending).await?;
                    pending.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::built_in;

    #[test]
    fn fault_rules_parse() {
        assert_eq!(
            "silence@3".parse(),
            Ok(FaultRule {
                fault: Fault::Silence,
                schedule: Schedule::Once(3)
            })
        );
        assert_eq!(
            "exception:6%4".parse(),
            Ok(FaultRule {
                fault: Fault::Exception(6),
                schedule: Schedule::Every(4)
            })
        );
        assert_eq!(
            "late:800@1".parse::<FaultRule>().map(|r| r.fault),
            Ok(Fault::Late(Duration::from_millis(800)))
        );
        for bad in ["silence", "silence@0", "exception:0@1", "boom@1", "late@2"] {
            assert!(bad.parse::<FaultRule>().is_err(), "{bad}");
        }
    }

    fn meter(profile: &str) -> MeterState {
        MeterState {
            config: SimMeterConfig {
                unit: UnitId::try_from(1).unwrap(),
                profile: built_in(profile).unwrap(),
                annual_kwh: 3500.0,
                import_wh: 1_000_000.0,
                export_wh: 0.0,
                faults: vec![],
            },
            requests: 0,
            // 2026-01-12 00:00 UTC, a Monday.
            sim_ms: 1_768_176_000_000,
            import_wh: 1_000_000.0,
        }
    }

    #[test]
    fn energy_follows_the_h25_profile() {
        let mut m = meter("abb-b23");
        let start = m.sim_ms;
        // One full January workday quarter hour 00:00-00:15: H25 20.126 kWh per 1e6 kWh/a,
        // so 20.126 * 3500 / 1000 = 70.441 Wh.
        m.advance(start + QUARTER_MS);
        assert!(
            (m.import_wh - 1_000_070.441).abs() < 1e-6,
            "{}",
            m.import_wh
        );
        // Half of the next quarter (00:15-00:30, 18.915): 18.915 * 3.5 / 2 = 33.10125 Wh.
        m.advance(start + QUARTER_MS + QUARTER_MS / 2);
        assert!(
            (m.import_wh - 1_000_103.542_25).abs() < 1e-6,
            "{}",
            m.import_wh
        );
    }

    #[test]
    fn abb_image_holds_the_counter_in_hundredths_of_kwh() {
        let m = meter("abb-b23");
        let image = m.registers(Function::Holding, 0x5000, 8).unwrap();
        // 1,000,000 Wh = 1000 kWh = 100000 hundredths = 0x186A0.
        assert_eq!(&image.words[..4], &[0, 0, 0x0001, 0x86A0]);
        assert_eq!(image.import_wh, Some(1_000_000));
        // Reads outside the profile's blocks get "illegal data address".
        assert_eq!(
            m.registers(Function::Holding, 0x4FFF, 2).err(),
            Some(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            m.registers(Function::Input, 0x5000, 2).err(),
            Some(ExceptionCode::IllegalDataAddress)
        );
    }

    #[test]
    fn sunspec_image_picks_scale_factors_that_fit() {
        let m = meter("sunspec-203");
        let image = m.registers(Function::Holding, 40069, 55).unwrap();
        assert_eq!(&image.words[..2], &[203, 105]);
        // 1,000,000 Wh fits an acc32 at exponent -3 (1e9 < 2^32), the finest tried.
        let sf = image.words[54] as i16;
        assert_eq!(sf, -3);
        let raw = (u32::from(image.words[46]) << 16) | u32::from(image.words[47]);
        assert_eq!(raw, 1_000_000_000);
        // 230 V at V_SF: i16 holds 23000 (exponent -2) but not 230000.
        assert_eq!(image.words[15] as i16, -2);
        assert_eq!(image.words[8], 23000);
    }
}
