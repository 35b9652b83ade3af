//! `dcnet bench ...`: measurements on this machine, each against a baseline from the same run.

pub mod aggregate;
pub mod keystream;
pub mod simulate;

use std::time::Duration;

pub use super::progress::si;

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux); `None` elsewhere.
///
/// Per-core rates divide by CPU time rather than wall time, so that a machine shared with
/// other work does not make a kernel look slower than it is; `openssl speed` does the same
/// (it divides by user CPU time unless given `-elapsed`).
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
