//! `echo-harness crosscheck`: does echo-client agree with the tools people already trust, on
//! the same pinned server, measured the same way? Every tool runs in turn against a fresh
//! reference server in a pinned [`Session`] (the primitive every harness measurement uses),
//! rounds repeated (A B C, A B C, ...) so drift hits all tools alike. Each tool's CPU is taken
//! from the kernel's accounting of reaped children (`RUSAGE_CHILDREN`), the same for all, so
//! "CPU per round trip" compares like with like.
//!
//! The [`verdict`] (skipped with `--short`): echo-client's HTTP throughput must be within 15%
//! of `wrk -t1`'s, over plaintext and over TLS alike, and echo-client must not be saturated
//! where wrk is not; with more than 5% CPU steal the machine is too noisy to judge and the
//! crosscheck says so.

pub mod table;
pub mod tools;
pub mod verdict;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use echobench_core::monitor::{Bracket, CpuOf};
use tokio_util::sync::CancellationToken;

use crate::binaries;
use crate::config::HarnessConfig;
use crate::cpuset::CpuSet;
use crate::exit;
use crate::session::{Pinning, Session};
use table::Setup;
use tools::{Group, Measured, Tool};
use verdict::{Verdict, judge};

/// Options of the crosscheck.
#[derive(Debug, Clone, clap::Args)]
pub struct CrosscheckArgs {
    /// Rounds: every tool runs once per round.
    #[arg(long, alias = "pairs", default_value_t = 3)]
    pub rounds: u32,
    /// Length of each run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Connections for the HTTP and WebSocket groups (the latency floor uses one).
    #[arg(short, long, default_value_t = 64)]
    pub connections: u32,
    /// CI mode: one round of 2 s runs; print the table, judge nothing.
    #[arg(long)]
    pub short: bool,
    /// Only these groups (comma-separated: http, https, websocket, floor).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Folder holding echo-server, echo-client and echo-pingpong.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where to write runs.csv and crosscheck.md (in a dated subfolder).
    #[arg(long, default_value = "target/crosscheck")]
    pub out: PathBuf,
}

/// One tool run.
#[derive(Debug, Clone)]
pub struct Row {
    /// Round number.
    pub round: u32,
    /// The tool.
    pub tool: Tool,
    /// What it measured, or why not.
    pub measured: Result<Measured, String>,
    /// The tool's CPU time (user + system).
    pub cpu: Duration,
    /// The server's CPU time over the tool's run.
    pub server_cpu: Duration,
    /// Its wall-clock time.
    pub wall: Duration,
    /// CPU steal during it, percent.
    pub steal: Option<f64>,
}

impl Row {
    /// CPU microseconds per completed round trip.
    pub fn cpu_us_per_round_trip(&self) -> Option<f64> {
        let m = self.measured.as_ref().ok()?;
        (m.round_trips > 0).then(|| self.cpu.as_secs_f64() * 1e6 / m.round_trips as f64)
    }

    /// The server's CPU microseconds per round trip the tool completed: the same server doing
    /// the same work should cost about the same per round trip whoever counts them.
    pub fn server_cpu_us_per_round_trip(&self) -> Option<f64> {
        let m = self.measured.as_ref().ok()?;
        (m.round_trips > 0 && !self.server_cpu.is_zero())
            .then(|| self.server_cpu.as_secs_f64() * 1e6 / m.round_trips as f64)
    }

    /// CPU time over wall time (the tools are pinned to one CPU).
    pub fn utilization(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs the crosscheck; returns the exit code.
pub fn main(args: &CrosscheckArgs) -> u8 {
    let Some(runtime) = crate::runtime::start() else {
        return exit::FAILURE;
    };
    match runtime.block_on(crosscheck(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err}");
            exit::FAILURE
        }
    }
}

async fn crosscheck(args: &CrosscheckArgs) -> Result<u8, String> {
    let (rounds, duration) = if args.short {
        (1, Duration::from_secs(2))
    } else {
        (args.rounds.max(1), args.duration)
    };
    let seconds = duration.as_secs().max(1);
    let bins = binaries::locate(args.bin_dir.as_deref())?;
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "");
    let out = args.out.join(stamp.trim_end_matches('Z'));
    std::fs::create_dir_all(&out)
        .map_err(|err| format!("cannot create {}: {err}", out.display()))?;
    std::fs::write(out.join("body-32.bin"), [b'x'; 32]).map_err(|err| err.to_string())?;
    let root = std::env::current_dir().map_err(|err| err.to_string())?;
    let (all_tools, notices) = tools::catalogue(
        &bins.dir,
        &root.join("peers"),
        &root.join("scripts"),
        &out,
        args.connections,
        seconds,
    );
    let wanted = |g: Group| args.only.is_empty() || args.only.iter().any(|o| o == g.name());
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !Group::ALL.iter().any(|g| g.name() == o.as_str()))
    {
        return Err(format!(
            "--only {unknown}: no such group; expected some of http, https, websocket, floor"
        ));
    }
    let tools: Vec<Tool> = all_tools.into_iter().filter(|t| wanted(t.group)).collect();
    for notice in &notices {
        eprintln!("notice: {notice}");
    }
    let allowed = CpuSet::new(echobench_core::monitor::allowed_cpus());
    let (server_cpus, client_cpus) = CpuSet::split(&allowed);
    eprintln!(
        "crosscheck: {} tools x {rounds} round(s) of {seconds}s; server on CPU {server_cpus}, tools on CPU {client_cpus} -> {}",
        tools.len(),
        out.display()
    );

    let whole = Bracket::open(CpuOf::Process);
    let mut rows = Vec::new();
    let pinning = Pinning {
        bins: &bins,
        server_cpus: &server_cpus,
        client_cpus: &client_cpus,
        ready_timeout: Duration::from_secs(10),
    };
    for round in 1..=rounds {
        for tool in &tools {
            let row = measure(&pinning, &out, tool, round, duration).await;
            match &row.measured {
                Ok(m) => eprintln!(
                    "[round {round}] {}: {:.0} rt/s, {:.2} CPU µs/rt",
                    tool.name,
                    m.rps,
                    row.cpu_us_per_round_trip().unwrap_or(f64::NAN)
                ),
                Err(err) => eprintln!("[round {round}] {}: failed: {err}", tool.name),
            }
            rows.push(row);
        }
    }
    let steal = whole.close().steal_percent;

    let verdict = if args.short {
        None
    } else {
        Some(judge(&rows, steal))
    };
    let setup = Setup {
        provenance: table::provenance(&tools, &root),
        rounds,
        seconds,
        connections: args.connections,
    };
    let rendered = table::render(&setup, &rows, &notices, steal, verdict.as_ref());
    println!("{rendered}");
    table::write_outputs(&out, &rows, &rendered)?;
    Ok(match verdict {
        None | Some(Verdict::Agree(_)) => exit::OK,
        Some(Verdict::Disagree(_)) => exit::DISAGREE,
        Some(Verdict::TooNoisy(_)) => exit::TOO_NOISY,
    })
}

/// One run of `tool` against a fresh session of its group's reference server (its stderr
/// in `out`).
async fn measure(
    pinning: &Pinning<'_>,
    out: &std::path::Path,
    tool: &Tool,
    round: u32,
    duration: Duration,
) -> Row {
    let failed = |reason: String| Row {
        round,
        tool: tool.clone(),
        measured: Err(reason),
        cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
        wall: Duration::ZERO,
        steal: None,
    };
    let implementation = tool.group.server();
    let mut spec = match HarnessConfig::reference(implementation) {
        Ok(spec) => spec,
        Err(err) => return failed(err),
    };
    if tool.group.tls() {
        spec.tls = true;
        spec.command
            .extend(["--tls", "--cert-out", "{ca}"].map(str::to_owned));
    }
    let log = out.join(format!(
        "server-{implementation}{}.log",
        if spec.tls { "-tls" } else { "" }
    ));
    let limit = duration + Duration::from_secs(30);
    let interrupt = CancellationToken::new();
    let ran = match Session::run_once(&spec, pinning, log, &tool.argv, limit, &interrupt).await {
        Ok((_, ran)) => ran,
        Err(err) => return failed(err.to_string()),
    };
    Row {
        round,
        tool: tool.clone(),
        measured: ran
            .stdout
            .and_then(|stdout| tools::parse(&tool.output, &stdout)),
        cpu: ran.bracket.cpu,
        server_cpu: ran.server_cpu,
        wall: ran.bracket.elapsed,
        steal: ran.bracket.steal_percent,
    }
}
