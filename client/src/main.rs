//! `echo-client`: the round-trip load generator. All the work is in [`echo_client::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = echo_client::cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    ExitCode::from(echo_client::cli::run(&args))
}
