//! `echo-harness exec SERVER -- COMMAND...`: any command (wrk, a script, echo-client with
//! flags the matrix does not have) against a reference server in a pinned [`Session`] — the
//! same start-up, echo check, bracketing and clean stop as every harness trial. The command's
//! stdout passes through; then one line, `ECHOBENCH_EXEC {json}`, says where the server was
//! and what the command cost: its CPU (as a reaped child), the server's CPU, the wall time, the
//! CPU steal, and the largest resident memory of the server's and of the command's process
//! groups.
//! The measurement scripts in `scripts/` are built on it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::binaries;
use crate::config::HarnessConfig;
use crate::cpuset::CpuSet;
use crate::exit;
use crate::session::{Pinning, Ran, Session};

/// Options of `exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// The reference server: hyper, axum, tungstenite, axum-ws or tcp (as in the built-in
    /// config, pinned to the server CPUs).
    pub server: String,
    /// One more flag for echo-server, repeatable (e.g. --server-arg=--stall-every=1s).
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Longest the command may run before it is stopped (and exec fails).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub limit: Duration,
    /// Folder holding echo-server and echo-client [default: next to echo-harness].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the server's stderr goes [default: a file in the temporary folder, removed after
    /// a successful run].
    #[arg(long, value_name = "FILE")]
    pub server_log: Option<PathBuf>,
    /// The command, pinned to the client CPUs; `{url}` is the server's echo URL and `{base}`
    /// the same without its path.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The `ECHOBENCH_EXEC` line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    server: &'a str,
    url: &'a str,
    server_cpus: String,
    client_cpus: String,
    cpu_s: f64,
    wall_s: f64,
    steal_percent: Option<f64>,
    /// The server group's CPU over the command's run (its start and teardown included).
    server_cpu_s: f64,
    /// The server group's largest resident memory while the command ran.
    server_peak_rss_bytes: u64,
    /// The server group's resident memory before the command.
    server_idle_rss_bytes: u64,
    /// The command's group's largest resident memory (every process it started, summed).
    command_peak_rss_bytes: u64,
}

/// Runs `exec`; returns the exit code.
pub fn main(args: &ExecArgs) -> u8 {
    let mut spec = match HarnessConfig::reference(&args.server) {
        Ok(spec) => spec,
        Err(err) => {
            eprintln!("Error: {err}");
            return exit::USAGE;
        }
    };
    spec.command.extend(args.server_args.iter().cloned());
    let bins = match binaries::locate(args.bin_dir.as_deref()) {
        Ok(bins) => bins,
        Err(err) => {
            eprintln!("Error: {err}");
            return exit::FAILURE;
        }
    };
    let Some(runtime) = crate::runtime::start() else {
        return exit::FAILURE;
    };
    let (server_cpus, client_cpus) =
        CpuSet::split(&CpuSet::new(echobench_core::monitor::allowed_cpus()));
    let log = args.server_log.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("echo-harness-exec-{}.log", std::process::id()))
    });
    let pinning = Pinning {
        bins: &bins,
        server_cpus: &server_cpus,
        client_cpus: &client_cpus,
        ready_timeout: Duration::from_secs(30),
    };
    let interrupt = CancellationToken::new();
    runtime.block_on(async {
        crate::runtime::watch_signals(interrupt.clone(), "interrupted: stopping the command");
        let started = Session::run_once(
            &spec,
            &pinning,
            log.clone(),
            &args.command,
            args.limit,
            &interrupt,
        )
        .await;
        let (url, ran) = match started {
            Ok(done) => done,
            Err(err) => {
                eprintln!("Error: {err}");
                return exit::FAILURE;
            }
        };
        match &ran.stdout {
            Ok(stdout) => {
                if args.server_log.is_none() {
                    let _ = std::fs::remove_file(&log);
                }
                print!("{stdout}");
                println!(
                    "ECHOBENCH_EXEC {}",
                    line(&args.server, &url, &server_cpus, &client_cpus, &ran)
                );
                exit::OK
            }
            Err(_) if interrupt.is_cancelled() => exit::INTERRUPTED,
            Err(err) => {
                eprintln!("Error: {err}");
                exit::FAILURE
            }
        }
    })
}

fn line(server: &str, url: &str, server_cpus: &CpuSet, client_cpus: &CpuSet, ran: &Ran) -> String {
    let bracket = &ran.bracket;
    serde_json::to_string(&Line {
        server,
        url,
        server_cpus: server_cpus.to_string(),
        client_cpus: client_cpus.to_string(),
        cpu_s: bracket.cpu.as_secs_f64(),
        wall_s: bracket.elapsed.as_secs_f64(),
        steal_percent: bracket.steal_percent,
        server_cpu_s: ran.server_cpu.as_secs_f64(),
        server_peak_rss_bytes: ran.server_peak_rss,
        server_idle_rss_bytes: ran.server_idle_rss,
        command_peak_rss_bytes: ran.command_peak_rss,
    })
    .unwrap_or_default()
}
