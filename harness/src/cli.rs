//! The `echo-harness` command line: flags, and which subcommand runs. Each subcommand's work
//! is in its own module; this one only dispatches and maps outcomes to [`exit`] codes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::exit;
use crate::machine::Machine;
use crate::plan::{self, Loaded, Overrides, Plan};
use crate::runner;

/// Runs echo servers and echo-client over a matrix of loads, with interleaved trials, server
/// CPU and memory cost, statistics, and self-describing results.
///
/// Results go to <out>/<date>-<host>-<gitsha>[-label]/: raw.csv (one row per trial),
/// summary.csv (one row per cell), comparison.csv, summary.md, throughput.svg, p99.svg,
/// manifest.json, and the client's JSON report of every trial in trials/. All are rewritten
/// after every trial.
#[derive(Debug, Parser)]
#[command(name = "echo-harness", version, max_term_width = 100, after_help = exit::HELP, args_conflicts_with_subcommands = true)]
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
    /// Search every matrix load for each server's capacity under the SLO ([slo], [search]):
    /// the highest offered rate at which it holds, confirmed, with a 95% interval. Writes
    /// capacity.csv and probes.csv beside the usual files.
    Capacity(RunArgs),
    /// Compare two runs cell by cell (Welch's t-test over trials and searches): capacity by
    /// the capacities found, fixed-rate cells by server CPU per round trip, closed-loop cells
    /// by throughput.
    Compare {
        /// The baseline run folder.
        a: PathBuf,
        /// The run folder to judge against it.
        b: PathBuf,
        /// Check instead that B reproduces A: every capacity ratio to tcp within 3%, every
        /// fixed-rate server CPU per round trip within 2% (exit 4 when one does not).
        #[arg(long)]
        repro: bool,
    },
    /// Check echo-client against wrk, h2load, oha and peer clients on the same pinned server.
    Crosscheck(crate::crosscheck::CrosscheckArgs),
    /// Run any command against a pinned reference server and report what it cost.
    Exec(crate::exec::ExecArgs),
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
        Some(Command::Compare { a, b, repro }) => compare(&a, &b, repro),
        Some(Command::Crosscheck(args)) => crate::crosscheck::main(&args),
        Some(Command::Exec(args)) => crate::exec::main(&args),
        Some(Command::Run(args)) => run(&args, false),
        Some(Command::Capacity(args)) => run(&args, true),
        None => run(&cli.run, false),
    }
}

fn compare(a: &Path, b: &Path, repro: bool) -> u8 {
    let (a_name, b_name) = (a.display().to_string(), b.display().to_string());
    let (machine_a, machine_b) = (Machine::of_run(a), Machine::of_run(b));
    if let Some(note) = crate::machine::difference_note(machine_a.as_ref(), machine_b.as_ref()) {
        eprint!("{note}");
    }
    match (crate::compare::read_run(a), crate::compare::read_run(b)) {
        (Ok(ra), Ok(rb)) if repro => {
            let (table, all) = crate::compare::render_repro(&a_name, &b_name, &ra, &rb);
            print!("{table}");
            if all { exit::OK } else { exit::DISAGREE }
        }
        (Ok(ra), Ok(rb)) => {
            print!("{}", crate::compare::render(&a_name, &b_name, &ra, &rb));
            exit::OK
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("Error: {err}");
            exit::USAGE
        }
    }
}

impl RunArgs {
    /// What these flags change of the config (`capacity_only` for `echo-harness capacity`).
    pub fn overrides(&self, capacity_only: bool) -> Overrides {
        Overrides {
            quick: self.quick,
            trials: self.trials,
            duration: self.duration,
            only: self.only.clone(),
            label: self.label.clone(),
            retry_noisy: self.retry_noisy,
            allow_remote: self.allow_remote,
            out: self.out.clone(),
            bin_dir: self.bin_dir.clone(),
            capacity_only,
        }
    }
}

/// Reads the config and resolves the plan (bad flags or config: exit 2).
fn resolve(args: &RunArgs, capacity_only: bool) -> anyhow::Result<Plan> {
    let loaded = Loaded::read(args.config.as_deref())?;
    Plan::resolve(
        &args.overrides(capacity_only),
        loaded,
        &echobench_core::monitor::allowed_cpus(),
        std::env::args().collect(),
    )
}

fn run(args: &RunArgs, capacity_only: bool) -> u8 {
    let plan = match resolve(args, capacity_only) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("Error: {err:#}");
            return exit::USAGE;
        }
    };
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    if args.dry_run {
        for target in &plan.targets {
            println!("capacity {}", crate::capacity::target_name(target));
        }
        for cell in &plan.cells {
            println!("{}", cell.id());
        }
        eprintln!(
            "{} capacity searches x {}, {} cells, {} trials; server CPUs {}, client CPUs {}",
            plan.targets.len(),
            1 + plan.config.search.confirm,
            plan.cells.len(),
            plan.trial_count(),
            plan.server_cpus,
            plan.client_cpus
        );
        return exit::OK;
    }
    let prepared = match plan::prepare(plan) {
        Ok(prepared) => prepared,
        Err(err) => {
            eprintln!("Error: {err:#}");
            return exit::FAILURE;
        }
    };
    let Some(runtime) = crate::runtime::start() else {
        return exit::FAILURE;
    };
    eprintln!(
        "echo-harness: {} capacity searches x {}, {} cells, {} trials -> {}",
        prepared.plan.targets.len(),
        1 + prepared.plan.config.search.confirm,
        prepared.plan.cells.len(),
        prepared.plan.trial_count(),
        prepared.out_dir.display()
    );
    let interrupt = CancellationToken::new();
    let outcome = runtime.block_on(async {
        crate::runtime::watch_signals(
            interrupt.clone(),
            "interrupted: stopping the current trial; results so far are kept",
        );
        runner::execute(&prepared, &interrupt).await
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
            eprintln!("results: {}", prepared.out_dir.display());
            if let Ok(text) = std::fs::read_to_string(prepared.out_dir.join("summary.md")) {
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
