//! The bus client: one task owns a serial line and serves reads for every meter on it.
//!
//! RS-485 is half duplex and shared, so exactly one request may be in flight. [`Bus::spawn`]
//! starts a task that owns the port and takes [`ReadRequest`]s from a queue, one at a time:
//!
//! 1. **Quiet line.** Before each request the task listens until the line has been silent for the
//!    RTU inter-frame time (3.5 characters) and the meter's inter-request delay has passed,
//!    discarding whatever arrives. After a timeout or a bad frame it keeps listening for the
//!    profile's recovery time as well, so a late answer is thrown away instead of being taken
//!    for the answer to the next request.
//! 2. **Exchange.** `tokio-modbus` encodes the request and decodes the answer. It runs on a fresh
//!    in-memory pipe for every exchange, and the task copies bytes between that pipe and the
//!    port: no state of one exchange (buffered bytes, a half-decoded frame) can leak into the
//!    next, and the task sees the raw bytes to tell silence, a CRC error and garbage apart when
//!    the exchange fails.
//! 3. **Retries.** Timeouts, CRC errors, malformed answers and "busy"/"acknowledge" exceptions are
//!    retried up to the meter's limit; other exceptions (illegal address...) are final.
//!
//! Every attempt is counted per unit id ([`MeterStats`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_modbus::client::Client as _;
use tokio_modbus::{Request, Response, Slave};

use crate::profile::{Function, MAX_REGISTERS_PER_REQUEST, Timing};
use crate::rtu::{self, LineFault};

/// A Modbus unit id of a meter on a serial bus: 1..=247 (0 is broadcast, 248..=255 reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(u8);

impl UnitId {
    /// The id as a byte.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for UnitId {
    type Error = String;
    fn try_from(id: u8) -> Result<Self, Self::Error> {
        if (1..=247).contains(&id) {
            Ok(UnitId(id))
        } else {
            Err(format!("unit id {id} is outside 1..=247"))
        }
    }
}

impl std::str::FromStr for UnitId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id: u8 = s
            .parse()
            .map_err(|_| format!("unit id {s:?} is not a number in 1..=247"))?;
        UnitId::try_from(id)
    }
}

impl std::fmt::Display for UnitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why one read failed. Each variant is a different kind of trouble with its own remedy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No complete answer arrived in time (meter off, wrong unit id, baud rate or wiring).
    #[error("unit {unit}: no answer within {} ms", timeout.as_millis())]
    Timeout { unit: u8, timeout: Duration },
    /// The meter answered with a Modbus exception.
    #[error(
        "unit {unit}: Modbus exception {code:#04x} ({}) for function {function:#04x} at address {address:#06x}",
        exception_name(*code)
    )]
    Exception {
        unit: u8,
        function: u8,
        address: u16,
        code: u8,
    },
    /// A frame arrived whose CRC does not match its contents (line noise, wrong parity).
    #[error(
        "unit {unit}: CRC error in the answer (frame carries {received:#06x}, contents give {computed:#06x})"
    )]
    Crc {
        unit: u8,
        received: u16,
        computed: u16,
    },
    /// Bytes arrived that are no valid answer to the request.
    #[error("unit {unit}: malformed answer: {detail}")]
    BadFrame { unit: u8, detail: String },
    /// The request itself is not a legal Modbus read.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The serial port failed (unplugged adapter, closed pseudo-terminal).
    #[error("serial port: {0}")]
    Serial(String),
    /// The bus task is gone.
    #[error("the bus task has stopped")]
    BusClosed,
}

impl ReadError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReadError::Timeout { .. } | ReadError::Crc { .. } | ReadError::BadFrame { .. } => true,
            ReadError::Exception { code, .. } => matches!(code, 0x05 | 0x06),
            _ => false,
        }
    }

    /// Whether the line may still carry bytes of this exchange, so it needs a recovery pause.
    fn leaves_line_dirty(&self) -> bool {
        matches!(
            self,
            ReadError::Timeout { .. } | ReadError::Crc { .. } | ReadError::BadFrame { .. }
        )
    }
}

/// The name the Modbus application protocol gives an exception code.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

/// Counters of one unit id on a bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts answered with the registers asked for.
    pub ok: u64,
    /// Failed attempts of any kind.
    pub errors: u64,
    /// Attempts without an answer.
    pub timeouts: u64,
    /// Attempts answered with a Modbus exception.
    pub exceptions: u64,
    /// Attempts whose answer had a CRC error.
    pub crc_errors: u64,
    /// Attempts with a malformed answer.
    pub bad_frames: u64,
    /// Attempts that were retries of a failed one.
    pub retries: u64,
}

/// Counters of a whole bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Per unit id.
    pub meters: BTreeMap<u8, MeterStats>,
    /// Bytes that arrived outside any exchange (late answers, noise) and were thrown away.
    pub discarded_bytes: u64,
}

/// One read of consecutive registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// The meter.
    pub unit: UnitId,
    /// Holding or input registers.
    pub function: Function,
    /// First register, 0-based.
    pub address: u16,
    /// Number of registers, 1..=125.
    pub count: u16,
    /// Timeout, delay, recovery and retries for this meter.
    pub timing: Timing,
}

struct Job {
    request: ReadRequest,
    reply: oneshot::Sender<Result<Vec<u16>, ReadError>>,
}

/// A handle to the task that owns a serial line. Clones share the line.
#[derive(Clone)]
pub struct Bus {
    jobs: mpsc::Sender<Job>,
    stats: Arc<Mutex<BusStats>>,
}

impl Bus {
    /// Starts the bus task on `port` (a serial port, a pseudo-terminal or an in-memory pipe).
    /// `silence` is the inter-frame time of the line, see
    /// [`SerialSettings::inter_frame_silence`](crate::serial::SerialSettings::inter_frame_silence).
    /// Must be called inside a Tokio runtime.
    pub fn spawn<T>(port: T, silence: Duration) -> Bus
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(16);
        let stats = Arc::new(Mutex::new(BusStats::default()));
        let task = BusTask {
            port,
            silence,
            stats: stats.clone(),
            quiet: Quiet {
                not_before: Instant::now(),
                last_activity: Instant::now(),
            },
            broken: None,
        };
        tokio::spawn(task.run(queue));
        Bus { jobs, stats }
    }

    /// Reads registers, with the request's timeout and retries.
    pub async fn read(&self, request: ReadRequest) -> Result<Vec<u16>, ReadError> {
        if request.count == 0 || request.count > MAX_REGISTERS_PER_REQUEST {
            return Err(ReadError::BadRequest(format!(
                "{} registers; a read takes 1..={MAX_REGISTERS_PER_REQUEST}",
                request.count
            )));
        }
        if usize::from(request.address) + usize::from(request.count) > 0x1_0000 {
            return Err(ReadError::BadRequest(format!(
                "{} registers from {:#06x} run past address 0xffff",
                request.count, request.address
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { request, reply })
            .await
            .map_err(|_| ReadError::BusClosed)?;
        answer.await.map_err(|_| ReadError::BusClosed)?
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BusStats {
        lock(&self.stats).clone()
    }
}

fn lock(stats: &Mutex<BusStats>) -> std::sync::MutexGuard<'_, BusStats> {
    // A panic while holding the lock cannot leave the counters inconsistent, so poisoning is
    // ignored.
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When the next request may go out.
struct Quiet {
    /// Earliest time (inter-request delay, error recovery).
    not_before: Instant,
    /// When the line last carried a byte (or an exchange ended).
    last_activity: Instant,
}

struct BusTask<T> {
    port: T,
    silence: Duration,
    stats: Arc<Mutex<BusStats>>,
    quiet: Quiet,
    /// Set once the port failed; every later request gets this error.
    broken: Option<String>,
}

enum Outcome {
    Answer(tokio_modbus::Result<Response>),
    PortFailed(std::io::Error),
}

impl<T> BusTask<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(job) = queue.recv().await {
            let result = self.serve(&job.request).await;
            // The caller may have given up waiting; its answer is simply dropped.
            let _ = job.reply.send(result);
        }
    }

    fn count(&self, unit: u8, update: impl FnOnce(&mut MeterStats)) {
        update(lock(&self.stats).meters.entry(unit).or_default());
    }

    async fn serve(&mut self, request: &ReadRequest) -> Result<Vec<u16>, ReadError> {
        let unit = request.unit.get();
        let mut attempt = 0u8;
        loop {
            if let Some(message) = &self.broken {
                return Err(ReadError::Serial(message.clone()));
            }
            self.wait_for_quiet_line(request.timing.timeout).await?;
            self.count(unit, |s| {
                s.requests += 1;
                if attempt > 0 {
                    s.retries += 1;
                }
            });
            let result = self.exchange(request).await;
            let now = Instant::now();
            self.quiet.last_activity = now;
            self.quiet.not_before = now + request.timing.delay;
            match result {
                Ok(words) => {
                    self.count(unit, |s| s.ok += 1);
                    return Ok(words);
                }
                Err(error) => {
                    self.count(unit, |s| {
                        s.errors += 1;
                        match &error {
                            ReadError::Timeout { .. } => s.timeouts += 1,
                            ReadError::Exception { .. } => s.exceptions += 1,
                            ReadError::Crc { .. } => s.crc_errors += 1,
                            ReadError::BadFrame { .. } => s.bad_frames += 1,
                            _ => {}
                        }
                    });
                    if error.leaves_line_dirty() {
                        self.quiet.not_before =
                            self.quiet.not_before.max(now + request.timing.recovery);
                    }
                    if let ReadError::Serial(message) = &error {
                        self.broken = Some(message.clone());
                    }
                    if !error.is_retryable() || attempt >= request.timing.retries {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Listens, discarding every byte, until `not_before` has passed and the line has been
    /// silent for the inter-frame time. A line that never falls silent is used anyway after
    /// `give_up` more: the next exchange will report what it finds.
    async fn wait_for_quiet_line(&mut self, give_up: Duration) -> Result<(), ReadError> {
        let give_up_at = self.quiet.not_before.max(Instant::now()) + give_up;
        let mut buf = [0u8; rtu::MAX_FRAME_LEN];
        loop {
            let quiet_at = self
                .quiet
                .not_before
                .max(self.quiet.last_activity + self.silence);
            if Instant::now() >= quiet_at || Instant::now() >= give_up_at {
                return Ok(());
            }
            match tokio::time::timeout_at(quiet_at.min(give_up_at), self.port.read(&mut buf)).await
            {
                Err(_elapsed) => {}
                Ok(Ok(0)) => return Err(self.port_failed("end of file".into())),
                Ok(Ok(n)) => {
                    self.quiet.last_activity = Instant::now();
                    lock(&self.stats).discarded_bytes += n as u64;
                }
                Ok(Err(e)) => return Err(self.port_failed(e.to_string())),
            }
        }
    }

    fn port_failed(&mut self, message: String) -> ReadError {
        self.broken = Some(message.clone());
        ReadError::Serial(message)
    }

    /// One request and its answer.
    async fn exchange(&mut self, request: &ReadRequest) -> Result<Vec<u16>, ReadError> {
        let unit = request.unit.get();
        let (modbus_end, mut bridge) = tokio::io::duplex(2 * rtu::MAX_FRAME_LEN);
        let mut context =
            tokio_modbus::client::rtu::attach_slave(modbus_end, Slave(request.unit.get()));
        let modbus_request = match request.function {
            Function::Input => Request::ReadInputRegisters(request.address, request.count),
            Function::Holding => Request::ReadHoldingRegisters(request.address, request.count),
        };
        let mut raw = Vec::new();
        let outcome = tokio::time::timeout(request.timing.timeout, async {
            tokio::select! {
                answer = context.call(modbus_request) => Outcome::Answer(answer),
                error = pump(&mut self.port, &mut bridge, &mut raw) => Outcome::PortFailed(error),
            }
        })
        .await;
        let function = request.function.code();
        let fault = || rtu::classify(unit, function, &raw);
        match outcome {
            Err(_elapsed) => Err(match fault() {
                LineFault::Silence => ReadError::Timeout {
                    unit,
                    timeout: request.timing.timeout,
                },
                LineFault::Crc { received, computed } => ReadError::Crc {
                    unit,
                    received,
                    computed,
                },
                LineFault::Valid { .. } | LineFault::Garbled { .. } => ReadError::BadFrame {
                    unit,
                    detail: format!(
                        "{} bytes but no complete answer within {} ms",
                        raw.len(),
                        request.timing.timeout.as_millis()
                    ),
                },
            }),
            Ok(Outcome::PortFailed(e)) => Err(self.port_failed(e.to_string())),
            Ok(Outcome::Answer(Ok(Ok(response)))) => {
                let words = match (request.function, response) {
                    (Function::Input, Response::ReadInputRegisters(words))
                    | (Function::Holding, Response::ReadHoldingRegisters(words)) => words,
                    (_, other) => {
                        return Err(ReadError::BadFrame {
                            unit,
                            detail: format!("unexpected response {other:?}"),
                        });
                    }
                };
                if words.len() != usize::from(request.count) {
                    return Err(ReadError::BadFrame {
                        unit,
                        detail: format!("{} registers instead of {}", words.len(), request.count),
                    });
                }
                Ok(words)
            }
            Ok(Outcome::Answer(Ok(Err(exception)))) => Err(ReadError::Exception {
                unit,
                function,
                address: request.address,
                code: u8::from(exception),
            }),
            Ok(Outcome::Answer(Err(tokio_modbus::Error::Protocol(e)))) => {
                Err(ReadError::BadFrame {
                    unit,
                    detail: e.to_string(),
                })
            }
            Ok(Outcome::Answer(Err(tokio_modbus::Error::Transport(e)))) => Err(match fault() {
                LineFault::Crc { received, computed } => ReadError::Crc {
                    unit,
                    received,
                    computed,
                },
                _ => ReadError::BadFrame {
                    unit,
                    detail: e.to_string(),
                },
            }),
        }
    }
}

/// Copies the request from `tokio-modbus` to the port and the answer back, keeping a copy of
/// every byte received. Runs until the port fails; the caller drops it when the exchange ends.
async fn pump<T>(port: &mut T, bridge: &mut DuplexStream, raw: &mut Vec<u8>) -> std::io::Error
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut to_port = [0u8; rtu::MAX_FRAME_LEN];
    let mut from_port = [0u8; rtu::MAX_FRAME_LEN];
    loop {
        let step: std::io::Result<()> = tokio::select! {
            n = bridge.read(&mut to_port) => match n {
                // `tokio-modbus` never closes its end while the exchange runs.
                Ok(0) => std::future::pending().await,
                Ok(n) => async {
                    port.write_all(&to_port[..n]).await?;
                    port.flush().await
                }.await,
                Err(e) => Err(e),
            },
            n = port.read(&mut from_port) => match n {
                Ok(0) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "end of file")),
                Ok(n) => {
                    raw.extend_from_slice(&from_port[..n]);
                    bridge.write_all(&from_port[..n]).await
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = step {
            return e;
        }
    }
}
