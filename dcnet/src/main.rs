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
            // One line: the context chain joined with ": ".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
