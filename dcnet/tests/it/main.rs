//! End-to-end tests of the `dcnet` binary, one module per topic.
// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod audit;
mod churn;
mod columnar;
mod e2e;
mod gateway;
mod graph;
mod lock;
mod scale;
mod tariff;

use std::process::{Command, Output};

/// Runs `dcnet` with `args`.
pub fn dcnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args(args)
        .output()
        .expect("dcnet runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
