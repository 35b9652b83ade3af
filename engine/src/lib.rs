//! The dcnet DC-net core.
//!
//! Households mask each metering-interval reading with pairwise edge keys shared with their
//! neighbours in a key graph; summing every masked frame cancels the keys and leaves the exact
//! group total. This crate holds the arithmetic of that scheme and nothing else: it reads no
//! files, opens no sockets and keeps no clocks, so every result is a pure function of its inputs
//! (see `ARCHITECTURE.md`).
// `unsafe` is allowed only in `keystream::x86` (see ARCHITECTURE.md); every other module keeps
// the deny.
#![deny(unsafe_code)]

pub mod graph;
pub mod keystream;
pub mod loadprofile;
pub mod notification;
pub mod protocol;
pub mod seed;
pub mod superpose;

pub use graph::{Connectivity, GraphError, KeyGraph};
pub use notification::Notification;
pub use seed::{EdgeSeed, EdgeSeedDeriver, MasterKey, edge_seed, master_key};
pub use superpose::{SuperposeError, add_lanes, local_superposition, resend_superposition};

/// Largest number of u64 lanes one message may carry (DESIGN §1, frame v1 `lanes`).
pub const MAX_LANES: usize = 32;
