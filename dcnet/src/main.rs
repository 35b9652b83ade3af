//! The `dcnet` command.
#![forbid(unsafe_code)]

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(args) => cmd::simulate::run(args.into_config()?),
        Command::Aggregate(args) => cmd::aggregate::run(args.into_config()?),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Demo(args) => cmd::demo::run(args.into_config()?),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the context chain joined with ": ".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
