//! Shared fixtures for dcnet benchmarks.
#![forbid(unsafe_code)]
