//! Reading household meters over Modbus RTU, and the gateway logic that masks what it reads.
//!
//! - [`profile`]: device profiles as data (TOML), the built-in ones compiled in.
//! - [`encoding`]: integer and float encodings in every word order.
//! - [`reading`]: decoding a profile's registers into physical values and Wh counters.
//! - [`client`]: the bus task that owns a serial line (timeouts, quiet periods, retries,
//!   counters), and [`meter`]: a profile at a unit id on a bus.
//! - [`sim`]: a simulated meter bus on `tokio-modbus`'s RTU server, with injected faults.
//! - [`gateway`]: round boundaries, energy deltas and masking with the engine.
//!
//! This crate does no frame or log I/O: the `dcnet` binary writes the gateway's frames with
//! the `ingest` crate.
#![forbid(unsafe_code)]

pub mod client;
pub mod encoding;
pub mod gateway;
pub mod meter;
pub mod profile;
pub mod reading;
pub mod rtu;
pub mod serial;
pub mod sim;

pub use client::{Bus, BusStats, MeterStats, ReadError, ReadRequest, UnitId};
pub use meter::{Meter, MeterError};
pub use profile::{Profile, ProfileError, Role};
pub use serial::SerialSettings;
