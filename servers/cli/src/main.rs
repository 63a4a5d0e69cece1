//! `echo-server`: runs one reference echo server. The servers are the `echo-servers` library;
//! this package adds only the command line ([`cli`]), so a test that uses the library as a
//! fixture compiles no flag parser.

mod cli;
mod processes;

use std::process::ExitCode;

use clap::Parser;
use echobench_core::exit::server as exit;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Err(err) = args.check() {
        err.exit();
    }
    init_logging();
    match cli::run(&args) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Logs go to stderr only: stdout carries the ready line and nothing else. Colours only on a
/// terminal, so a log file (the harness keeps one per trial) holds plain text.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
