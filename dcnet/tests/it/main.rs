//! End-to-end tests of the `dcnet` binary.
// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod e2e;
