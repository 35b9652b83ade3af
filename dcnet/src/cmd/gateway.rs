//! `dcnet gateway`: read the meter at every round boundary, mask the round's energy and append
//! a transmit frame to a round log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ingest::log::LOG_HEADER_LEN;
use ingest::{Frame, LogHeader, LogWriter, Notification};
use meter_io::gateway::{DeltaTracker, RoundOutcome, mask};
use meter_io::{Meter, Role};

use crate::cli::GatewayRunConfig;
use crate::cmd::meter::{open_bus, print_stats, runtime, unix_ms};

/// A round log opened for appending one frame at a time.
struct LogAppender {
    file: File,
    path: PathBuf,
}

impl LogAppender {
    /// Opens `path`, or creates it with a fresh header. An existing log must have `lanes`
    /// lanes; a partial frame at its end (a write cut short) is cut off so that new frames stay
    /// aligned.
    fn open(path: &Path, lanes: u8) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("--out {}", path.display()))?;
        let len = file.metadata()?.len();
        if len == 0 {
            LogWriter::new(&mut file, lanes, crate::cmd::meter::unix_ms())?.finish()?;
            file.sync_data()?;
        } else {
            let mut header = [0u8; LOG_HEADER_LEN];
            file.read_exact(&mut header)
                .with_context(|| format!("--out {}: not a round log", path.display()))?;
            let header =
                LogHeader::parse(&header).with_context(|| format!("--out {}", path.display()))?;
            ensure!(
                header.lanes == lanes,
                "--out {}: the log has {} lanes, this gateway writes {lanes}",
                path.display(),
                header.lanes
            );
            let frame_len = header.frame_len() as u64;
            let partial = (len - LOG_HEADER_LEN as u64) % frame_len;
            if partial != 0 {
                eprintln!(
                    "{}: cutting off a partial frame of {partial} bytes at offset {}",
                    path.display(),
                    len - partial
                );
                file.set_len(len - partial)?;
            }
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends a frame and makes it durable before returning.
    fn append(&mut self, frame: &Frame) -> Result<()> {
        let bytes = frame.to_bytes()?;
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// "70 Wh imported, 0 Wh exported" for deltas, "import counter 1000070 Wh, ..." for counters.
fn describe_energy(lanes: &[u64], counters: bool) -> String {
    lanes
        .iter()
        .zip(["import", "export"])
        .map(|(wh, direction)| {
            if counters {
                format!("{direction} counter {wh} Wh")
            } else {
                format!("{wh} Wh {direction}ed")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(config: GatewayRunConfig) -> Result<()> {
    runtime()?.block_on(run_rounds(config))
}

async fn run_rounds(config: GatewayRunConfig) -> Result<()> {
    let mut log = LogAppender::open(&config.out, config.lanes)?;
    let bus = open_bus(&config.serial)?;
    let meter = Meter::new(bus.clone(), config.unit, config.profile.clone());
    let roles: &[Role] = if config.lanes == 2 {
        &[Role::EnergyImport, Role::EnergyExport]
    } else {
        &[Role::EnergyImport]
    };
    let clock = config.clock;
    let period = clock.period_ms();
    let now = unix_ms();
    let first = match config.from_round {
        Some(round) => {
            ensure!(
                clock.start_of(round) + period / 4 >= now,
                "--from-round {round} started {} s ago; use a later round (the current one is {})",
                (now - clock.start_of(round)) / 1000,
                clock.round_at(now)
            );
            round
        }
        None => clock.round_at(now).saturating_add(1),
    };
    if let Some(rounds) = config.rounds {
        ensure!(
            first.checked_add(rounds).is_some(),
            "--rounds {rounds} from round {first} runs past the last round number"
        );
    }
    eprintln!(
        "gateway: client {} of net {} with {} neighbours ({}); meter unit {} ({}) on {} ({}); rounds of {} s, first reading at the start of round {first}",
        config.client,
        config.net,
        config.keys.neighbours.len(),
        config.keys_path.display(),
        config.unit,
        config.profile.name,
        config.serial.port,
        config.serial.settings.describe(),
        period as f64 / 1000.0,
    );
    let mut tracker = DeltaTracker::new();
    let (mut sent, mut skipped) = (0u64, 0u64);
    let boundaries = config.rounds.map(|r| u64::from(r) + 1);
    let mut index = 0u64;
    while boundaries.is_none_or(|b| index < b) {
        let Some(boundary) = u32::try_from(index).ok().and_then(|i| first.checked_add(i)) else {
            bail!("ran out of round numbers");
        };
        index += 1;
        let at = clock.start_of(boundary);
        let now = unix_ms();
        if at > now {
            tokio::time::sleep(Duration::from_millis(at - now)).await;
        }
        // A reading long after the boundary would shift energy between rounds.
        let late = unix_ms().saturating_sub(at);
        let reading = if late > period / 4 {
            Err(format!(
                "the gateway woke {late} ms after the round boundary"
            ))
        } else {
            meter
                .read_energy_wh(roles)
                .await
                .map_err(|error| error.to_string())
        };
        let shown = reading.clone();
        let (next, outcome) = tracker.at_boundary(boundary, reading);
        tracker = next;
        match outcome {
            RoundOutcome::Baseline { boundary } => eprintln!(
                "client {}: round {boundary}: first reading {}; frames start with this round",
                config.client,
                describe_energy(&shown.unwrap_or_default(), true)
            ),
            RoundOutcome::Send { round, delta } => {
                let masked = mask(config.client, round, &delta, &config.keys)?;
                log.append(&Frame {
                    notification: Notification::Transmit,
                    transmission: true,
                    dc_net_id: config.net,
                    client_id: config.client,
                    round,
                    timestamp_ms: unix_ms(),
                    lanes: masked,
                })?;
                sent += 1;
                eprintln!(
                    "client {}: round {round}: sent a transmit frame ({}, masked)",
                    config.client,
                    describe_energy(&delta, false)
                );
            }
            RoundOutcome::Skip { round, reason } => {
                skipped += 1;
                eprintln!(
                    "client {}: round {round}: no frame: {reason}",
                    config.client
                );
            }
        }
    }
    eprintln!(
        "gateway: {sent} frames appended to {}, {skipped} rounds without a frame",
        config.out.display()
    );
    if config.stats {
        print_stats(&bus.stats());
    }
    Ok(())
}
