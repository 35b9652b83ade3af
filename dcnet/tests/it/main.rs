//! End-to-end tests of the `dcnet` binary.

mod e2e;
