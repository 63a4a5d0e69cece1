//! What the crosscheck writes: the Markdown table (with its provenance: command, revision,
//! machine, every tool's version) and `runs.csv`, one row per tool run.

use std::fmt::Write as _;
use std::process::Stdio;

use echobench_core::thresholds::CLIENT_SATURATED;

use super::Row;
use super::tools::{Group, Measured, Tool};
use super::verdict::{TOLERANCE, Verdict, medians};
use crate::stats;

/// Where the figures come from: the command, the source revision, the machine and the version
/// of every tool, so a crosscheck table describes itself like a harness run does.
pub(crate) fn provenance(tools: &[Tool], root: &std::path::Path) -> String {
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
pub(crate) struct Setup {
    pub(crate) provenance: String,
    pub(crate) rounds: u32,
    pub(crate) seconds: u64,
    pub(crate) connections: u32,
}

pub(crate) fn render(
    setup: &Setup,
    rows: &[Row],
    notices: &[String],
    steal: Option<f64>,
    verdict: Option<&Verdict>,
) -> String {
    let Setup {
        provenance,
        rounds,
        seconds,
        connections,
    } = setup;
    let mut out = String::new();
    let _ = writeln!(out, "# echobench crosscheck\n");
    let _ = writeln!(out, "{provenance}\n");
    let _ = writeln!(
        out,
        "{rounds} round(s), every tool once per round, {seconds} s per run, {connections} connections (1 for the floor); server pinned to one CPU with --threads 1, each tool pinned to the other CPU with one thread. CPU per round trip is the tool's user + system time (RUSAGE_CHILDREN) over its completed round trips; server CPU per round trip is the server process group's CPU over the tool's run over the same round trips (round trips a tool counted but the server never did would show as a cheaper server). Medians over rounds; latency columns are the median of each run's own percentile (h2load reports none). CPU steal over the crosscheck: {}.\n",
        steal.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.2}%"))
    );
    for group in Group::ALL {
        let in_group: Vec<&Row> = rows.iter().filter(|r| r.tool.group == group).collect();
        if in_group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {}\n", group.title());
        let _ = writeln!(
            out,
            "| tool | runs | rt/s | vs echo-client | p50 | p99 | CPU µs / rt | CPU use | saturated | server CPU µs / rt |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        let ours = medians(rows, "echo-client", group).map(|m| m.rps);
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
            let server = median(
                runs.iter()
                    .filter_map(|r| r.server_cpu_us_per_round_trip())
                    .collect(),
            );
            let fmt = |v: Option<f64>, suffix: &str, decimals: usize| {
                v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}{suffix}"))
            };
            let _ = writeln!(
                out,
                "| {name} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                ok.len(),
                runs.len(),
                fmt(rps, "", 0),
                fmt(rps.zip(ours).map(|(r, o)| r / o), "x", 2),
                fmt(p50, " µs", 0),
                fmt(p99, " µs", 0),
                fmt(cpu, "", 2),
                fmt(util.map(|u| u * 100.0), "%", 0),
                util.map_or("-", |u| if u > CLIENT_SATURATED { "yes" } else { "no" }),
                fmt(server, "", 2),
            );
        }
        for r in in_group.iter().filter(|r| r.measured.is_err()) {
            if let Err(err) = &r.measured {
                let _ = writeln!(out, "\nround {}: {} failed: {err}", r.round, r.tool.name);
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

pub(crate) fn write_outputs(
    out: &std::path::Path,
    rows: &[Row],
    table: &str,
) -> Result<(), String> {
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
        "server_cpu_s",
        "server_cpu_us_per_round_trip",
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
                r.round.to_string(),
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
                format!("{:.6}", r.server_cpu.as_secs_f64()),
                opt(r.server_cpu_us_per_round_trip()),
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
