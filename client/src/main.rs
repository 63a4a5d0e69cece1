//! `echo-client`: the round-trip load generator. All the work is in [`echo_client::cli`]
//! (and `echo-client merge` in [`echo_client::merge`]).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file holds plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `merge` is the one subcommand; anything else is a target URL (never the word `merge`).
    if std::env::args_os().nth(1).is_some_and(|a| a == "merge") {
        let args = echo_client::merge::MergeArgs::parse_from(std::env::args_os().skip(1));
        return ExitCode::from(echo_client::merge::run(&args));
    }
    let args = echo_client::cli::Args::parse();
    ExitCode::from(echo_client::cli::run(&args))
}
