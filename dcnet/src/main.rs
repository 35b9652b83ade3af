//! The `dcnet` command.
#![forbid(unsafe_code)]

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{
    AuditCommand, BenchCommand, Cli, Command, GraphCommand, LockCommand, MeterCommand,
    TariffCommand,
};

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(args) => cmd::simulate::run(args.into_config()?),
        Command::Aggregate(args) => cmd::aggregate::run(args.into_config()?),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Demo(args) => cmd::demo::run(args.into_config()?),
        Command::Churn(args) => cmd::churn::run(&args.into_config()?),
        Command::Audit(AuditCommand::Verify(args)) => cmd::audit::verify(&args.into_config()?),
        Command::Audit(AuditCommand::Show(args)) => cmd::audit::show(&args.into_config()?),
        Command::Graph(GraphCommand::Analyze(args)) => cmd::graph::analyze(&args.into_config()?),
        Command::Meter(args) => match args.command {
            MeterCommand::Read(args) => cmd::meter::read(args.into_config()?),
            MeterCommand::Scan(args) => cmd::meter::scan(args.into_config()?),
            MeterCommand::Sim(args) => cmd::meter::sim(args.into_config()?),
            MeterCommand::Profiles(args) => cmd::meter::profiles(args),
        },
        Command::Gateway(args) => cmd::gateway::run(args.into_config()?),
        Command::Tariff(TariffCommand::Bill(args)) => cmd::tariff::bill(args.into_config()?),
        Command::Tariff(TariffCommand::Diff(args)) => cmd::tariff::diff(args.into_config()?),
        Command::Keygen(args) => cmd::keygen::run(args.into_config()?),
        Command::Lock(LockCommand::Init(args)) => cmd::lock::init(args.into_config()?),
        Command::Lock(LockCommand::Request(args)) => cmd::lock::request(args),
        Command::Lock(LockCommand::Approve(args)) => cmd::lock::approve(args),
        Command::Lock(LockCommand::Apply(args)) => cmd::lock::apply(args),
        Command::Lock(LockCommand::Security(args)) => cmd::lock::security(args.into_config()?),
        Command::Export(args) => cmd::export::run(args),
        Command::Bench(bench) => match bench.command {
            BenchCommand::Aggregate(args) => cmd::bench::aggregate::run(args.into_config()?),
            BenchCommand::Keystream(args) => cmd::bench::keystream::run(args.into_config()?),
            BenchCommand::Simulate(args) => cmd::bench::simulate::run(args.into_config()?),
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (e.g. a listing piped into `head`) ends the command quietly.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, joined with ": ", leaving out a cause whose message
/// the one before it already shows: many errors (Arrow's and Parquet's I/O errors among them)
/// print their source inside their own message and also return it as their source, so a plain
/// join would name a full disk three times.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if parts.last().is_some_and(|last| last.contains(&message)) {
            continue;
        }
        parts.push(message);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// An error that shows its source in its own message and returns it as its source too.
    #[derive(Debug)]
    struct Echoing(std::io::Error);

    impl std::fmt::Display for Echoing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Io error: {}", self.0)
        }
    }

    impl std::error::Error for Echoing {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_shown_is_not_repeated() {
        let full = std::io::Error::from_raw_os_error(28);
        let shown = full.to_string();
        let result: Result<(), Echoing> = Err(Echoing(full));
        let error = result.context("cannot write out.parquet").unwrap_err();
        assert_eq!(
            one_line(&error),
            format!("cannot write out.parquet: Io error: {shown}")
        );
    }

    #[test]
    fn causes_that_add_something_are_all_kept() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(missing)
            .context("cannot read graph.csv")
            .context("cannot start");
        assert_eq!(
            one_line(&error),
            "cannot start: cannot read graph.csv: no such file"
        );
    }
}
