use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = airlock::cli::Cli::parse();
    ExitCode::from(airlock::cli::dispatch(cli))
}
