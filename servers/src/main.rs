//! `echo-server`: runs one reference echo server. All the work is in [`echo_servers::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = echo_servers::cli::Args::parse();
    init_logging();
    match echo_servers::cli::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr only: stdout carries the ready line and nothing else.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
