//! `dcnet bench ...`: measurements on this machine, each against a baseline from the same run.

pub mod aggregate;
pub mod keystream;
pub mod simulate;

use std::time::Duration;

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

/// A rate with an SI prefix: `12.3 M`, `456 k`.
pub fn si(value: f64) -> String {
    let (scaled, prefix) = if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.1} {prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes() {
        assert_eq!(si(2.5e8), "250.0 M");
        assert_eq!(si(1.2e9), "1.2 G");
        assert_eq!(si(999.0), "999.0 ");
    }
}
