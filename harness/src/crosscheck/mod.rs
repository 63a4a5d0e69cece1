//! `echo-harness crosscheck`: does echo-client agree with the tools people already trust, on
//! the same pinned server, measured the same way? Every tool runs in turn against a fresh
//! reference server, rounds repeated (A B C, A B C, ...) so drift hits all tools alike. Each
//! tool's CPU is taken from the kernel's accounting of reaped children (`RUSAGE_CHILDREN`), the
//! same for all, so "CPU per round trip" compares like with like.
//!
//! The verdict (skipped with `--short`): echo-client's HTTP throughput must be within 15% of
//! `wrk -t1`'s, and echo-client must not be saturated where wrk is not; with more than 5% CPU
//! steal the machine is too noisy to judge and the crosscheck says so.

pub mod tools;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use echo_client::monitor::CpuTimes;
use echo_client::target::Protocol;
use nix::sys::resource::{UsageWho, getrusage};
use tokio::io::AsyncReadExt;

use crate::binaries::{self, Binaries};
use crate::config::{Readiness, ServerSpec};
use crate::cpuset::CpuSet;
use crate::process;
use crate::server::{Launch, RunningServer};
use crate::stats;
use tools::{Group, Measured, Tool};

/// Largest allowed disagreement between echo-client and wrk.
pub const TOLERANCE: f64 = 0.15;
/// Above this CPU steal (percent) the crosscheck refuses to judge.
pub const MAX_STEAL_PERCENT: f64 = 5.0;
/// A tool using more than this fraction of its CPU is saturated.
pub const SATURATED: f64 = 0.90;

/// Exit codes of the crosscheck.
pub mod exit {
    /// Agreement (or `--short`, which does not judge).
    pub const AGREE: u8 = 0;
    /// The crosscheck could not run.
    pub const FAILURE: u8 = 1;
    /// echo-client disagrees with wrk, or is saturated where wrk is not.
    pub const DISAGREE: u8 = 3;
    /// Too much CPU steal to judge.
    pub const TOO_NOISY: u8 = 4;
}

/// Options of the crosscheck.
#[derive(Debug, Clone, clap::Args)]
pub struct CrosscheckArgs {
    /// Rounds: every tool runs once per round.
    #[arg(long, default_value_t = 3)]
    pub pairs: u32,
    /// Length of each run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Connections for the HTTP and WebSocket groups (the latency floor uses one).
    #[arg(short, long, default_value_t = 64)]
    pub connections: u32,
    /// CI mode: one round of 2 s runs; print the table, judge nothing.
    #[arg(long)]
    pub short: bool,
    /// Only these groups (comma-separated: http, websocket, floor).
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
    pub pair: u32,
    /// The tool.
    pub tool: Tool,
    /// What it measured, or why not.
    pub measured: Result<Measured, String>,
    /// The tool's CPU time (user + system).
    pub cpu: Duration,
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

    /// CPU time over wall time (the tools are pinned to one CPU).
    pub fn utilization(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs the crosscheck; returns the exit code.
pub fn main(args: &CrosscheckArgs) -> u8 {
    let Some(runtime) = crate::cli::runtime() else {
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
    let (pairs, duration) = if args.short {
        (1, Duration::from_secs(2))
    } else {
        (args.pairs.max(1), args.duration)
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
    let wanted = |g: Group| {
        args.only.is_empty()
            || args.only.iter().any(|o| {
                matches!(
                    (o.as_str(), g),
                    ("http", Group::Http)
                        | ("websocket", Group::WebSocket)
                        | ("floor", Group::Floor)
                )
            })
    };
    let tools: Vec<Tool> = all_tools.into_iter().filter(|t| wanted(t.group)).collect();
    for notice in &notices {
        eprintln!("notice: {notice}");
    }
    let allowed = CpuSet::new(echo_client::monitor::allowed_cpus());
    let (server_cpus, client_cpus) = CpuSet::split(&allowed);
    eprintln!(
        "crosscheck: {} tools x {pairs} round(s) of {seconds}s; server on CPU {server_cpus}, tools on CPU {client_cpus} -> {}",
        tools.len(),
        out.display()
    );

    let steal_start = CpuTimes::now();
    let mut rows = Vec::new();
    for pair in 1..=pairs {
        for tool in &tools {
            let row = measure(
                &bins,
                tool,
                pair,
                &server_cpus,
                &client_cpus,
                &out,
                duration,
            )
            .await;
            match &row.measured {
                Ok(m) => eprintln!(
                    "[round {pair}] {}: {:.0} rt/s, {:.2} CPU µs/rt",
                    tool.name,
                    m.rps,
                    row.cpu_us_per_round_trip().unwrap_or(f64::NAN)
                ),
                Err(err) => eprintln!("[round {pair}] {}: failed: {err}", tool.name),
            }
            rows.push(row);
        }
    }
    let steal = match (steal_start, CpuTimes::now()) {
        (Some(a), Some(b)) => Some(a.steal_percent(&b)),
        _ => None,
    };

    let verdict = if args.short {
        None
    } else {
        Some(judge(&rows, steal))
    };
    let setup = Setup {
        provenance: provenance(&tools, &root),
        pairs,
        seconds,
        connections: args.connections,
    };
    let table = render(&setup, &rows, &notices, steal, verdict.as_ref());
    println!("{table}");
    write_outputs(&out, &rows, &table)?;
    Ok(match verdict {
        None => exit::AGREE,
        Some(Verdict::Agree(_)) => exit::AGREE,
        Some(Verdict::Disagree(_)) => exit::DISAGREE,
        Some(Verdict::TooNoisy(_)) => exit::TOO_NOISY,
    })
}

async fn measure(
    bins: &Binaries,
    tool: &Tool,
    pair: u32,
    server_cpus: &CpuSet,
    client_cpus: &CpuSet,
    out: &std::path::Path,
    duration: Duration,
) -> Row {
    let failed = |reason: String| Row {
        pair,
        tool: tool.clone(),
        measured: Err(reason),
        cpu: Duration::ZERO,
        wall: Duration::ZERO,
        steal: None,
    };
    let implementation = tool.group.server();
    let spec = ServerSpec {
        name: implementation.to_owned(),
        command: [
            "{bin}/echo-server",
            implementation,
            "--addr",
            "{addr}",
            "--threads",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        protocol: match tool.group {
            Group::Http => Protocol::Http,
            Group::WebSocket => Protocol::WebSocket,
            Group::Floor => Protocol::Tcp,
        },
        path: None,
        payload: echo_client::Payload::Raw,
        ready: Readiness::Line,
        env: Default::default(),
        cwd: None,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let launch = Launch {
        spec: &spec,
        bins,
        cpus: server_cpus,
        ready_timeout: Duration::from_secs(10),
        log: out.join(format!("server-{implementation}.log")),
        base_dir: &cwd,
    };
    let server = match RunningServer::start(&launch).await {
        Ok(server) => server,
        Err(err) => return failed(format!("server did not start: {err}")),
    };
    let base = server
        .url
        .split_once("://")
        .map_or(server.url.clone(), |(scheme, rest)| {
            format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
        });
    let argv: Vec<String> = tool
        .argv
        .iter()
        .map(|a| a.replace("{url}", &server.url).replace("{base}", &base))
        .collect();
    let before = children_cpu();
    let steal_before = CpuTimes::now();
    let started = Instant::now();
    let mut command = match process::command(&argv, client_cpus) {
        Ok(command) => command,
        Err(err) => {
            server.stop(Duration::from_secs(5)).await;
            return failed(format!("cannot prepare `{}`: {err}", argv.join(" ")));
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let result = match command.spawn() {
        Ok(mut child) => {
            let mut stdout = child.stdout.take();
            let mut stderr = child.stderr.take();
            let read = async {
                let (mut o, mut e) = (String::new(), String::new());
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_string(&mut o).await;
                }
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_string(&mut e).await;
                }
                (o, e)
            };
            let limit = duration + Duration::from_secs(30);
            match tokio::time::timeout(limit, async {
                let (o, e) = read.await;
                (child.wait().await, o, e)
            })
            .await
            {
                Ok((Ok(status), stdout, _)) if status.success() => Ok(stdout),
                Ok((status, _, stderr)) => Err(format!(
                    "{} exited with {status:?}: {}",
                    tool.name,
                    stderr.trim()
                )),
                Err(_) => Err(format!(
                    "{} did not finish within {}",
                    tool.name,
                    humantime::format_duration(limit)
                )),
            }
        }
        Err(err) => Err(format!("cannot start `{}`: {err}", argv.join(" "))),
    };
    let wall = started.elapsed();
    let cpu = children_cpu().saturating_sub(before);
    let steal = match (steal_before, CpuTimes::now()) {
        (Some(a), Some(b)) => Some(a.steal_percent(&b)),
        _ => None,
    };
    server.stop(Duration::from_secs(5)).await;
    Row {
        pair,
        tool: tool.clone(),
        measured: result.and_then(|stdout| tools::parse(&tool.output, &stdout)),
        cpu,
        wall,
        steal,
    }
}

/// CPU time of all reaped children so far.
fn children_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |u| {
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::from_micros(u64::try_from(t.tv_sec() * 1_000_000 + t.tv_usec()).unwrap_or(0))
        };
        tv(u.user_time()) + tv(u.system_time())
    })
}

/// The crosscheck's judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// echo-client agrees with wrk.
    Agree(String),
    /// It does not: our measurement may be wrong.
    Disagree(String),
    /// The machine was too noisy to judge.
    TooNoisy(String),
}

fn medians(rows: &[Row], name: &str, group: Group) -> Option<(f64, f64)> {
    let ok: Vec<&Row> = rows
        .iter()
        .filter(|r| r.tool.name == name && r.tool.group == group && r.measured.is_ok())
        .collect();
    let rps = stats::spread(
        &ok.iter()
            .filter_map(|r| r.measured.as_ref().ok().map(|m| m.rps))
            .collect::<Vec<_>>(),
    )?;
    let util = stats::spread(&ok.iter().map(|r| r.utilization()).collect::<Vec<_>>())?;
    Some((rps.median, util.median))
}

/// Applies the rules: steal first, then agreement with wrk, then saturation.
pub fn judge(rows: &[Row], steal: Option<f64>) -> Verdict {
    if let Some(steal) = steal.filter(|s| *s > MAX_STEAL_PERCENT) {
        return Verdict::TooNoisy(format!(
            "CPU steal was {steal:.1}% (over {MAX_STEAL_PERCENT}%): the machine is too noisy to judge; run again later"
        ));
    }
    let (Some((ours, our_util)), Some((wrk, wrk_util))) = (
        medians(rows, "echo-client", Group::Http),
        medians(rows, "wrk -t1", Group::Http),
    ) else {
        return Verdict::Disagree("echo-client and wrk -t1 must both complete HTTP runs to be compared (is wrk installed?)".to_owned());
    };
    let ratio = ours / wrk;
    if (ratio - 1.0).abs() > TOLERANCE {
        return Verdict::Disagree(format!(
            "echo-client measured {ours:.0} rt/s where wrk measured {wrk:.0} rt/s on the same server ({:+.1}%, tolerance ±{:.0}%): one of the two measurements is wrong",
            (ratio - 1.0) * 100.0,
            TOLERANCE * 100.0
        ));
    }
    if our_util > SATURATED && wrk_util <= SATURATED {
        return Verdict::Disagree(format!(
            "echo-client was saturated ({:.0}% CPU) where wrk was not ({:.0}%): our client would be the bottleneck",
            our_util * 100.0,
            wrk_util * 100.0
        ));
    }
    Verdict::Agree(format!(
        "echo-client agrees with wrk: {ours:.0} vs {wrk:.0} rt/s ({:+.1}%), CPU use {:.0}% vs {:.0}%",
        (ratio - 1.0) * 100.0,
        our_util * 100.0,
        wrk_util * 100.0
    ))
}

/// Where the figures come from: the command, the source revision, the machine and the version
/// of every tool, so a crosscheck table describes itself like a harness run does.
fn provenance(tools: &[Tool], root: &std::path::Path) -> String {
    let command: Vec<String> = std::env::args().collect();
    let mut versions: Vec<String> = Vec::new();
    let mut peer_clients = false;
    for tool in tools {
        let Some(program) = tool.argv.first() else {
            continue;
        };
        if program.ends_with("run.sh") {
            peer_clients = true;
            continue;
        }
        let own = std::path::Path::new(program)
            .file_name()
            .is_some_and(|name| name == "echo-client" || name == "echo-pingpong");
        let version = if own {
            "built from this revision".to_owned()
        } else {
            version_line(program)
        };
        let entry = format!("{}: {version}", tool.name);
        if !versions.contains(&entry) {
            versions.push(entry);
        }
    }
    if peer_clients {
        versions.push(
            "peer clients: pinned in peers/node/package-lock.json and peers/python/requirements.txt"
                .to_owned(),
        );
    }
    format!(
        "Command: `{}`. Source: git {}. Machine: {}. Tools: {}.",
        command.join(" "),
        crate::machine::Revision::read(root).describe(),
        crate::machine::Machine::read().describe(),
        versions.join("; ")
    )
}

/// The first line `program --version` prints, or "version unknown".
fn version_line(program: &str) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // wrk appends its copyright notice to the version line.
            text.lines()
                .next()
                .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "version unknown".to_owned())
}

/// How the crosscheck ran, for the table's header.
struct Setup {
    provenance: String,
    pairs: u32,
    seconds: u64,
    connections: u32,
}

fn render(
    setup: &Setup,
    rows: &[Row],
    notices: &[String],
    steal: Option<f64>,
    verdict: Option<&Verdict>,
) -> String {
    let Setup {
        provenance,
        pairs,
        seconds,
        connections,
    } = setup;
    let mut out = String::new();
    let _ = writeln!(out, "# echobench crosscheck\n");
    let _ = writeln!(out, "{provenance}\n");
    let _ = writeln!(
        out,
        "{pairs} round(s), every tool once per round, {seconds} s per run, {connections} connections (1 for the floor); server pinned to one CPU with --threads 1, each tool pinned to the other CPU with one thread. CPU per round trip is the tool's user + system time (RUSAGE_CHILDREN) over its completed round trips. Medians over rounds; latency columns are the median of each run's own percentile (h2load reports none). CPU steal over the crosscheck: {}.\n",
        steal.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.2}%"))
    );
    for group in [Group::Http, Group::WebSocket, Group::Floor] {
        let in_group: Vec<&Row> = rows.iter().filter(|r| r.tool.group == group).collect();
        if in_group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {}\n", group.title());
        let _ = writeln!(
            out,
            "| tool | runs | rt/s | vs echo-client | p50 | p99 | CPU µs / rt | CPU use | saturated |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        let ours = medians(rows, "echo-client", group).map(|m| m.0);
        let mut names: Vec<&str> = Vec::new();
        for r in &in_group {
            if !names.contains(&r.tool.name.as_str()) {
                names.push(&r.tool.name);
            }
        }
        for name in names {
            let runs: Vec<&&Row> = in_group.iter().filter(|r| r.tool.name == name).collect();
            let ok: Vec<&Measured> = runs
                .iter()
                .filter_map(|r| r.measured.as_ref().ok())
                .collect();
            let median = |values: Vec<f64>| stats::spread(&values).map(|s| s.median);
            let rps = median(ok.iter().map(|m| m.rps).collect());
            let p50 = median(ok.iter().filter_map(|m| m.p50_us).collect());
            let p99 = median(ok.iter().filter_map(|m| m.p99_us).collect());
            let cpu = median(
                runs.iter()
                    .filter_map(|r| r.cpu_us_per_round_trip())
                    .collect(),
            );
            let util = median(
                runs.iter()
                    .filter(|r| r.measured.is_ok())
                    .map(|r| r.utilization())
                    .collect(),
            );
            let fmt = |v: Option<f64>, suffix: &str, decimals: usize| {
                v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}{suffix}"))
            };
            let _ = writeln!(
                out,
                "| {name} | {}/{} | {} | {} | {} | {} | {} | {} | {} |",
                ok.len(),
                runs.len(),
                fmt(rps, "", 0),
                fmt(rps.zip(ours).map(|(r, o)| r / o), "x", 2),
                fmt(p50, " µs", 0),
                fmt(p99, " µs", 0),
                fmt(cpu, "", 2),
                fmt(util.map(|u| u * 100.0), "%", 0),
                util.map_or("-", |u| if u > SATURATED { "yes" } else { "no" }),
            );
        }
        for r in in_group.iter().filter(|r| r.measured.is_err()) {
            if let Err(err) = &r.measured {
                let _ = writeln!(out, "\nround {}: {} failed: {err}", r.pair, r.tool.name);
            }
        }
        let _ = writeln!(out);
    }
    for notice in notices {
        let _ = writeln!(out, "- {notice}");
    }
    match verdict {
        None => {
            let _ = writeln!(
                out,
                "\nNo verdict (--short): the ±{:.0}% gate against wrk belongs to the full crosscheck.",
                TOLERANCE * 100.0
            );
        }
        Some(Verdict::Agree(text)) => {
            let _ = writeln!(out, "\n**Verdict: agree.** {text}.");
        }
        Some(Verdict::Disagree(text)) => {
            let _ = writeln!(out, "\n**Verdict: DISAGREE.** {text}.");
        }
        Some(Verdict::TooNoisy(text)) => {
            let _ = writeln!(out, "\n**Verdict: cannot judge.** {text}.");
        }
    }
    out
}

fn write_outputs(out: &std::path::Path, rows: &[Row], table: &str) -> Result<(), String> {
    let header: Vec<String> = [
        "round",
        "group",
        "tool",
        "status",
        "round_trips",
        "rps",
        "p50_us",
        "p99_us",
        "errors",
        "cpu_s",
        "wall_s",
        "cpu_us_per_round_trip",
        "utilization",
        "steal_percent",
        "error",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let m = r.measured.as_ref().ok();
            let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
            vec![
                r.pair.to_string(),
                format!("{:?}", r.tool.group).to_lowercase(),
                r.tool.name.clone(),
                if m.is_some() { "ok" } else { "failed" }.to_owned(),
                m.map(|m| m.round_trips.to_string()).unwrap_or_default(),
                opt(m.map(|m| m.rps)),
                opt(m.and_then(|m| m.p50_us)),
                opt(m.and_then(|m| m.p99_us)),
                m.map(|m| m.errors.to_string()).unwrap_or_default(),
                format!("{:.6}", r.cpu.as_secs_f64()),
                format!("{:.6}", r.wall.as_secs_f64()),
                opt(r.cpu_us_per_round_trip()),
                format!("{:.4}", r.utilization()),
                opt(r.steal),
                r.measured.as_ref().err().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    crate::export::write_csv(&out.join("runs.csv"), &header, &rows)
        .map_err(|err| err.to_string())?;
    crate::export::write_atomically(&out.join("crosscheck.md"), table.as_bytes())
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, rps: f64, cpu_ms: u64) -> Row {
        Row {
            pair: 1,
            tool: Tool {
                name: name.to_owned(),
                group: Group::Http,
                argv: Vec::new(),
                output: tools::Output::JsonLine,
            },
            measured: Ok(Measured {
                round_trips: rps as u64,
                rps,
                p50_us: None,
                p99_us: None,
                errors: 0,
            }),
            cpu: Duration::from_millis(cpu_ms),
            wall: Duration::from_secs(1),
            steal: Some(0.0),
        }
    }

    /// The gate: within 15% and no one-sided saturation passes; otherwise it says why.
    #[test]
    fn judgement() {
        let agree = [
            row("echo-client", 100_000.0, 800),
            row("wrk -t1", 95_000.0, 950),
        ];
        assert!(matches!(judge(&agree, Some(1.0)), Verdict::Agree(_)));
        let apart = [
            row("echo-client", 70_000.0, 800),
            row("wrk -t1", 100_000.0, 950),
        ];
        match judge(&apart, Some(1.0)) {
            Verdict::Disagree(text) => assert!(text.contains("-30.0%"), "{text}"),
            other => panic!("{other:?}"),
        }
        let saturated = [
            row("echo-client", 100_000.0, 990),
            row("wrk -t1", 100_000.0, 500),
        ];
        match judge(&saturated, None) {
            Verdict::Disagree(text) => assert!(text.contains("saturated (99% CPU)"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judge(&agree, Some(7.5)), Verdict::TooNoisy(_)));
        assert!(matches!(
            judge(&[row("echo-client", 1.0, 1)], None),
            Verdict::Disagree(_)
        ));
    }
}
