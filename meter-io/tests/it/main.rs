//! Integration tests of meter-io: the bus client against the simulated meter over an
//! in-process pseudo-terminal pair, and against hand-written frames over an in-memory pipe.
//! No test needs a device.
// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod bus;
mod frames;

use std::sync::Arc;
use std::time::Duration;

use meter_io::profile::{Profile, Timing, built_in};
use meter_io::sim::{FaultRule, ServedEnergy, SimBus, SimConfig, SimMeterConfig};
use meter_io::{Bus, UnitId};
use tokio::sync::mpsc;

/// A built-in profile with test timing: short timeouts keep failing cases fast.
pub fn profile(name: &str, timeout_ms: u64, recovery_ms: u64, retries: u8) -> Arc<Profile> {
    let mut p = (*built_in(name).unwrap()).clone();
    p.timing = Timing {
        timeout: Duration::from_millis(timeout_ms),
        delay: Duration::from_millis(1),
        recovery: Duration::from_millis(recovery_ms),
        retries,
    };
    Arc::new(p)
}

pub fn unit(id: u8) -> UnitId {
    UnitId::try_from(id).unwrap()
}

pub struct SimMeter {
    pub unit: u8,
    pub profile: Arc<Profile>,
    pub import_wh: f64,
    pub faults: &'static [&'static str],
}

/// Starts a simulated bus with these meters on one end of a pseudo-terminal pair and a bus
/// client on the other.
pub fn start(meters: Vec<SimMeter>) -> (Bus, SimBus, mpsc::UnboundedReceiver<ServedEnergy>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = SimConfig {
        meters: meters
            .into_iter()
            .map(|m| SimMeterConfig {
                unit: unit(m.unit),
                profile: m.profile,
                annual_kwh: 3500.0,
                import_wh: m.import_wh,
                export_wh: 0.0,
                faults: m
                    .faults
                    .iter()
                    .map(|f| f.parse::<FaultRule>().unwrap())
                    .collect(),
            })
            .collect(),
        speed: 1.0,
        // 2026-01-12 00:00 UTC.
        start_ms: Some(1_768_176_000_000),
    };
    let sim = SimBus::new(config, Some(tx)).unwrap();
    let (sim_end, client_end) = tokio_serial::SerialStream::pair().unwrap();
    let server = sim.clone();
    tokio::spawn(async move { server.serve(sim_end).await });
    // 9600 8N1: 3.65 ms of silence between frames.
    let bus = Bus::spawn(client_end, Duration::from_micros(3646));
    (bus, sim, rx)
}
