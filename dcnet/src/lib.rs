//! Library side of the `dcnet` command: the population simulator, shared with the benchmarks.
#![forbid(unsafe_code)]

pub mod sim;
