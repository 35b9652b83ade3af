//! ingest
#![forbid(unsafe_code)]
