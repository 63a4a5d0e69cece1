//! The `echo-harness` command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::binaries;
use crate::config::HarnessConfig;
use crate::cpuset::CpuSet;
use crate::machine::Revision;
use crate::matrix;
use crate::runner::{self, Plan};

/// Exit codes.
pub mod exit {
    /// Every trial ran.
    pub const OK: u8 = 0;
    /// The run could not be carried out.
    pub const FAILURE: u8 = 1;
    /// Bad flags or config.
    pub const USAGE: u8 = 2;
    /// The run completed but some trials failed (their reasons are in raw.csv and summary.md).
    pub const TRIALS_FAILED: u8 = 3;
    /// Interrupted; the results written so far are kept and marked incomplete.
    pub const INTERRUPTED: u8 = 130;
}

const AFTER_HELP: &str = "\
Results go to <out>/<date>-<host>-<gitsha>[-label]/: raw.csv (one row per trial), summary.csv
(one row per cell), comparison.csv, summary.md, throughput.svg, p99.svg, manifest.json, and the
client's JSON report of every trial in trials/. All are rewritten after every trial.

Exit codes: 0 every trial ran; 1 the run could not be carried out; 2 bad flags or config;
3 some trials failed (see summary.md); 130 interrupted (results so far kept, marked incomplete).";

/// Runs echo servers and echo-client over a matrix of loads, with interleaved trials, server
/// CPU and memory cost, statistics, and self-describing results.
#[derive(Debug, Parser)]
#[command(name = "echo-harness", version, max_term_width = 100, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run` (also accepted without the word `run`).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the matrix (the default).
    Run(RunArgs),
    /// Compare two runs cell by cell (Welch's t-test over trials).
    Compare {
        /// The baseline run folder.
        a: PathBuf,
        /// The run folder to judge against it.
        b: PathBuf,
    },
    /// Check echo-client against wrk, h2load, oha and peer clients on the same pinned server.
    Crosscheck(crate::crosscheck::CrosscheckArgs),
    /// Print the built-in default config, to copy and edit.
    DefaultConfig,
}

/// Options of a run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML config file [default: the built-in matrix, see `echo-harness default-config`].
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// One trial of short runs: a smoke test in under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Folder under which the run folder is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Suffix for the run folder's name.
    #[arg(long)]
    pub label: Option<String>,
    /// Re-run cells flagged noisy (CV > 5% or steal > 5%) up to N more times.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry_noisy: u32,
    /// Folder holding echo-server and echo-client [default: next to echo-harness, rebuilt
    /// first when run through cargo].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Override [run] trials.
    #[arg(long)]
    pub trials: Option<u32>,
    /// Override [run] duration.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Only these servers (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the cells that would run, and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow servers that announce a non-loopback address (passed on to echo-client). Only for
    /// machines you are allowed to load-test.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Runs the command; returns the exit code.
pub fn main(cli: Cli) -> u8 {
    match cli.command {
        Some(Command::DefaultConfig) => {
            print!("{}", crate::config::DEFAULT);
            exit::OK
        }
        Some(Command::Compare { a, b }) => compare(&a, &b),
        Some(Command::Crosscheck(args)) => crate::crosscheck::main(&args),
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    }
}

fn compare(a: &Path, b: &Path) -> u8 {
    match (crate::compare::read_run(a), crate::compare::read_run(b)) {
        (Ok(ra), Ok(rb)) => {
            print!(
                "{}",
                crate::compare::render(
                    &a.display().to_string(),
                    &b.display().to_string(),
                    &ra,
                    &rb
                )
            );
            exit::OK
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("Error: {err}");
            exit::USAGE
        }
    }
}

fn run(args: &RunArgs) -> u8 {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("Error: {err:#}");
            return exit::USAGE;
        }
    };
    if args.dry_run {
        for cell in &plan.cells {
            println!("{}", cell.id());
        }
        eprintln!(
            "{} cells x {} trials; server CPUs {}, client CPUs {}",
            plan.cells.len(),
            plan.config.run.trials,
            plan.server_cpus,
            plan.client_cpus
        );
        return exit::OK;
    }
    let Some(runtime) = runtime() else {
        return exit::FAILURE;
    };
    eprintln!(
        "echo-harness: {} cells x {} trials -> {}",
        plan.cells.len(),
        plan.config.run.trials,
        plan.out_dir.display()
    );
    let interrupt = CancellationToken::new();
    let outcome = runtime.block_on(async {
        watch_signals(interrupt.clone());
        runner::execute(&plan, &interrupt).await
    });
    match outcome {
        Err(err) => {
            eprintln!("Error: {err:#}");
            exit::FAILURE
        }
        Ok(outcome) => {
            let failed = outcome
                .results
                .iter()
                .filter(|r| r.status == crate::trial::Status::Failed)
                .count();
            eprintln!("results: {}", plan.out_dir.display());
            if let Ok(text) = std::fs::read_to_string(plan.out_dir.join("summary.md")) {
                println!("{text}");
            }
            if outcome.interrupted {
                eprintln!("interrupted: the results above are incomplete");
                exit::INTERRUPTED
            } else if failed > 0 {
                eprintln!("{failed} trial(s) failed; see summary.md");
                exit::TRIALS_FAILED
            } else {
                exit::OK
            }
        }
    }
}

/// The harness's runtime (current-thread: the harness itself does little); `None` after
/// printing why it could not start.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("Error: cannot start a tokio runtime: {err}");
            None
        }
    }
}

/// Resolves flags and config into a plan.
pub fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let (mut config, source, base_dir) = match &args.config {
        Some(path) => {
            let config = HarnessConfig::load(path)?;
            let base = path.parent().map(Path::to_owned).unwrap_or_default();
            let base = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base
            };
            (config, path.display().to_string(), base)
        }
        None => (
            HarnessConfig::default_config()?,
            "built-in default".to_owned(),
            PathBuf::from("."),
        ),
    };
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    if args.quick {
        config = config.quick();
    }
    if let Some(trials) = args.trials {
        if trials == 0 {
            bail!("--trials must be at least 1");
        }
        config.run.trials = trials;
    }
    if let Some(duration) = args.duration {
        config.run.duration = duration;
    }
    if !args.only.is_empty() {
        if let Some(unknown) = args
            .only
            .iter()
            .find(|n| !config.servers.iter().any(|s| &s.name == *n))
        {
            bail!("--only names `{unknown}`, which is not a configured server");
        }
        config.servers.retain(|s| args.only.contains(&s.name));
        for m in &mut config.matrices {
            if let Some(names) = &mut m.servers {
                names.retain(|n| args.only.contains(n));
            }
        }
    }
    let cells = matrix::cells(&config);
    if cells.is_empty() {
        bail!("the matrix has no cells for the selected servers");
    }
    let allowed = CpuSet::new(echo_client::monitor::allowed_cpus());
    let (default_server, default_client) = CpuSet::split(&allowed);
    let server_cpus = match &config.run.server_cpus {
        Some(list) => CpuSet::parse(list).context("[run] server_cpus")?,
        None => default_server,
    };
    let client_cpus = match &config.run.client_cpus {
        Some(list) => CpuSet::parse(list).context("[run] client_cpus")?,
        None => default_client,
    };
    server_cpus
        .check_within(&allowed)
        .context("[run] server_cpus")?;
    client_cpus
        .check_within(&allowed)
        .context("[run] client_cpus")?;
    if server_cpus
        .cpus()
        .iter()
        .any(|c| client_cpus.cpus().contains(c))
    {
        eprintln!(
            "warning: server and client share CPUs {server_cpus} / {client_cpus}; results will mix their costs"
        );
    }
    let bins = binaries::locate(args.bin_dir.as_deref()).map_err(anyhow::Error::msg)?;
    let out_dir = run_folder(&args.out, args.label.as_deref(), Path::new("."))?;
    Ok(Plan {
        config,
        config_source: source,
        base_dir,
        quick: args.quick,
        cells,
        bins,
        server_cpus,
        client_cpus,
        out_dir,
        retry_noisy: args.retry_noisy,
        allow_remote: args.allow_remote,
        command_line: std::env::args().collect(),
    })
}

/// `<out>/<date>-<host>-<gitsha>[-label]`, with `-2`, `-3`, ... if taken.
fn run_folder(out: &Path, label: Option<&str>, tree: &Path) -> anyhow::Result<PathBuf> {
    let date: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect();
    let host = crate::machine::Machine::read().hostname;
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{date}-{host}-{}", Revision::read(tree).short());
    if let Some(label) = label {
        if label.is_empty()
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "--label `{label}` must be non-empty and use only letters, digits, `-`, `_` and `.`"
            );
        }
        name.push('-');
        name.push_str(label);
    }
    let mut candidate = out.join(&name);
    let mut n = 2;
    while candidate.exists() {
        candidate = out.join(format!("{name}-{n}"));
        n += 1;
    }
    Ok(candidate)
}

fn watch_signals(interrupt: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => eprintln!("\ninterrupted: stopping the current trial; results so far are kept"),
            _ = term.recv() => eprintln!("terminated: stopping the current trial; results so far are kept"),
        }
        interrupt.cancel();
    });
}
