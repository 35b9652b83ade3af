//! `dcnet meter read|scan|sim|profiles`: household meters over Modbus RTU.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use meter_io::client::exception_name;
use meter_io::profile::{BUILT_IN, Timing};
use meter_io::reading::{self, BlockWords, Value};
use meter_io::sim::SimBus;
use meter_io::{Bus, BusStats, Meter, ReadError, ReadRequest, Role, UnitId};
use tokio_serial::SerialPort;

use crate::cli::{
    MeterProfilesArgs, MeterReadConfig, MeterScanConfig, MeterSimConfig, SerialConfig, SimLine,
};

/// A single-threaded runtime: one serial line needs no more.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `HH:MM:SS` (UTC) of a Unix time in ms.
fn clock_time(ms: u64) -> String {
    let seconds = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Opens the serial line and starts the bus task on it.
pub fn open_bus(serial: &SerialConfig) -> Result<Bus> {
    let port = meter_io::serial::open_port(&serial.port, &serial.settings)
        .with_context(|| format!("cannot open serial port ({})", serial.settings.describe()))?;
    Ok(Bus::spawn(port, serial.settings.inter_frame_silence()))
}

/// Prints the bus counters on stderr.
pub fn print_stats(stats: &BusStats) {
    eprintln!(
        "{:>4}  {:>8}  {:>8}  {:>6}  {:>8}  {:>10}  {:>4}  {:>9}  {:>7}",
        "unit", "requests", "ok", "errors", "timeouts", "exceptions", "crc", "malformed", "retries"
    );
    for (unit, s) in &stats.meters {
        eprintln!(
            "{:>4}  {:>8}  {:>8}  {:>6}  {:>8}  {:>10}  {:>4}  {:>9}  {:>7}",
            unit,
            s.requests,
            s.ok,
            s.errors,
            s.timeouts,
            s.exceptions,
            s.crc_errors,
            s.bad_frames,
            s.retries
        );
    }
    eprintln!(
        "bytes discarded outside exchanges: {}",
        stats.discarded_bytes
    );
}

pub fn read(config: MeterReadConfig) -> Result<()> {
    runtime()?.block_on(read_polls(config))
}

async fn read_polls(config: MeterReadConfig) -> Result<()> {
    let bus = open_bus(&config.serial)?;
    let meter = Meter::new(bus.clone(), config.unit, config.profile.clone());
    if !config.json {
        eprintln!(
            "unit {} on {} ({}), profile {}: {}",
            config.unit,
            config.serial.port,
            config.serial.settings.describe(),
            config.profile.name,
            config.profile.model
        );
    }
    let mut ticker = config.interval.map(|interval| {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut polls = 0u64;
    let mut failures = 0u64;
    let mut stdout = std::io::stdout().lock();
    loop {
        if let Some(ticker) = &mut ticker {
            ticker.tick().await;
        }
        let at = unix_ms();
        match meter.read_all().await {
            Ok(values) => {
                if config.json {
                    writeln!(stdout, "{}", poll_json(&config, at, &values))?;
                } else {
                    if config.count != Some(1) {
                        writeln!(stdout, "# poll {} at {} UTC", polls + 1, clock_time(at))?;
                    }
                    write_table(&mut stdout, &values)?;
                }
                stdout.flush()?;
            }
            Err(error) if config.count == Some(1) => {
                if config.stats {
                    print_stats(&bus.stats());
                }
                return Err(error).context("meter read failed");
            }
            Err(error) => {
                failures += 1;
                eprintln!(
                    "poll {} at {} UTC failed: {error}",
                    polls + 1,
                    clock_time(at)
                );
            }
        }
        polls += 1;
        if config.count.is_some_and(|count| polls >= count) {
            break;
        }
    }
    if config.stats {
        print_stats(&bus.stats());
    }
    if failures == polls {
        bail!("all {polls} polls failed");
    }
    Ok(())
}

fn write_table(out: &mut impl Write, values: &[Value]) -> std::io::Result<()> {
    let width = values
        .iter()
        .map(|v| v.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    writeln!(
        out,
        "{:<width$}  {:>14}  {:<6}  role",
        "register", "value", "unit"
    )?;
    for v in values {
        writeln!(
            out,
            "{:<width$}  {:>14}  {:<6}  {}",
            v.name,
            v.display(),
            v.unit,
            v.role.name()
        )?;
    }
    Ok(())
}

fn poll_json(config: &MeterReadConfig, at: u64, values: &[Value]) -> serde_json::Value {
    let registers: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                serde_json::json!({ "value": v.value, "unit": v.unit, "role": v.role.name() }),
            )
        })
        .collect();
    serde_json::json!({
        "time_ms": at,
        "unit": config.unit.get(),
        "profile": config.profile.name,
        "values": registers,
    })
}

pub fn scan(config: MeterScanConfig) -> Result<()> {
    runtime()?.block_on(scan_units(config))
}

async fn scan_units(config: MeterScanConfig) -> Result<()> {
    let bus = open_bus(&config.serial)?;
    let timing = Timing {
        timeout: config.timeout,
        delay: Duration::ZERO,
        recovery: Duration::ZERO,
        retries: 0,
    };
    let (function, address, count, block) = match &config.profile {
        Some(p) => {
            let block = p
                .register_with_role(Role::EnergyImport)
                .map(|r| r.block)
                .unwrap_or(0);
            let b = p.blocks.get(block).context("the profile has no blocks")?;
            (b.function, b.address, b.count, block)
        }
        None => (meter_io::profile::Function::Holding, 0, 1, 0),
    };
    let total = u64::from(*config.units.end() - *config.units.start()) + 1;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} unit {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    eprintln!(
        "probing unit ids {}..={} on {} ({}), {} ms each",
        config.units.start(),
        config.units.end(),
        config.serial.port,
        config.serial.settings.describe(),
        config.timeout.as_millis()
    );
    let mut found = 0;
    for id in config.units.clone() {
        let unit = UnitId::try_from(id).map_err(anyhow::Error::msg)?;
        let result = bus
            .read(ReadRequest {
                unit,
                function,
                address,
                count,
                timing,
            })
            .await;
        let line = match result {
            Ok(words) => {
                let detail = match &config.profile {
                    Some(p) => {
                        let mut blocks = BlockWords::new(p);
                        let energy = blocks
                            .insert(p, block, words)
                            .map_err(|e| e.to_string())
                            .and_then(|()| {
                                reading::energy_wh(p, &blocks, Role::EnergyImport)
                                    .map_err(|e| e.to_string())
                            });
                        match energy {
                            Ok(wh) => format!("answers as {}: import energy {} Wh", p.name, wh),
                            Err(e) => format!("answers, but not as {}: {e}", p.name),
                        }
                    }
                    None => format!(
                        "answers (holding register 0 = {})",
                        words.first().copied().unwrap_or(0)
                    ),
                };
                Some(detail)
            }
            Err(ReadError::Exception { code, .. }) => Some(format!(
                "answers with exception {code:#04x} ({}): a device is there",
                exception_name(code)
            )),
            Err(ReadError::Timeout { .. }) => None,
            Err(error @ (ReadError::Crc { .. } | ReadError::BadFrame { .. })) => Some(format!(
                "garbled answer ({error}); wrong baud rate or parity?"
            )),
            Err(error) => {
                bar.finish_and_clear();
                return Err(error).context("scan aborted");
            }
        };
        if let Some(line) = line {
            found += 1;
            bar.suspend(|| println!("unit {id}: {line}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("{found} of {total} unit ids answered");
    if config.stats {
        print_stats(&bus.stats());
    }
    Ok(())
}

pub fn sim(config: MeterSimConfig) -> Result<()> {
    runtime()?.block_on(serve_sim(config))
}

async fn serve_sim(config: MeterSimConfig) -> Result<()> {
    let (served_tx, mut served_rx) = tokio::sync::mpsc::unbounded_channel();
    let record = config.record.clone();
    let meters: Vec<String> = config
        .sim
        .meters
        .iter()
        .map(|m| format!("{} ({})", m.unit, m.profile.name))
        .collect();
    let speed = config.sim.speed;
    let bus = SimBus::new(config.sim, record.is_some().then_some(served_tx))?;
    if let Some(path) = record {
        let fresh = std::fs::metadata(&path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("--record {}", path.display()))?;
        if fresh {
            writeln!(file, "unit,at_ms,sim_ms,import_wh")?;
        }
        tokio::spawn(async move {
            while let Some(s) = served_rx.recv().await {
                let written = writeln!(file, "{},{},{},{}", s.unit, s.at_ms, s.sim_ms, s.import_wh)
                    .and_then(|()| file.flush());
                if let Err(error) = written {
                    eprintln!("--record {}: {error}; no longer recording", path.display());
                    break;
                }
            }
        });
    }
    let describe = format!(
        "simulated meter unit(s) {} at {speed}x real time",
        meters.join(", ")
    );
    match config.line {
        SimLine::Port(serial) => {
            let port =
                meter_io::serial::open_port(&serial.port, &serial.settings).with_context(|| {
                    format!("cannot open serial port ({})", serial.settings.describe())
                })?;
            eprintln!(
                "{describe} on {} ({})",
                serial.port,
                serial.settings.describe()
            );
            bus.serve(port).await?;
        }
        SimLine::Pty => {
            // The user's reader opens the path itself; `user_end` only keeps the terminal alive
            // between readers. It holds no lock (unlike a port opened by path), so it locks no
            // reader out, and nothing reads from it.
            let (line, user_end) =
                tokio_serial::SerialStream::pair().context("cannot open a pseudo-terminal")?;
            let path = user_end.name().context("the pseudo-terminal has no path")?;
            println!("{path}");
            std::io::stdout().flush()?;
            eprintln!("{describe} on {path}; interrupt to stop");
            bus.serve(line).await?;
            drop(user_end);
        }
    }
    Ok(())
}

pub fn profiles(args: MeterProfilesArgs) -> Result<()> {
    match args.name {
        Some(name) => {
            let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
                // Reuse the library's message listing the known names.
                meter_io::profile::built_in(&name)?;
                bail!("unknown profile {name:?}");
            };
            print!("{text}");
        }
        None => {
            for (name, _) in BUILT_IN {
                let profile = meter_io::profile::built_in(name)?;
                println!(
                    "{:<12} {:<60} {}",
                    name,
                    profile.model,
                    profile.serial.describe()
                );
            }
        }
    }
    Ok(())
}
