//! Integration tests of the ingest crate: the DESIGN §5 rules over real superpositions, and the
//! log reader against damaged input.
// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod columnar;
mod properties;
mod reference;
mod robustness;
