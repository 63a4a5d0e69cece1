//! `summary.md`: the comparison as Markdown tables, one per load family, with the flags
//! explained — the page a reader of a published run opens first.

use std::fmt::Write;

use echobench_core::format::{count, duration};

use super::comparison::loads;
use super::manifest::Manifest;
use crate::aggregate::{CellSummary, NOISY_CV_PERCENT};
use crate::capacity::CapacityResult;
use crate::matrix::Load;

fn family(load: &Load) -> String {
    let lifetime = match load.roundtrips {
        0 => "connections kept".to_owned(),
        r => format!("connections replaced every {r} round trips"),
    };
    let mode = match (load.of_capacity, load.rate) {
        (Some(fraction), _) => format!(
            "open loop at {:.0}% of each server's capacity",
            fraction * 100.0
        ),
        (None, Some(rate)) => format!("open loop at {rate}/s"),
        (None, None) => "closed loop (saturated: who wins the race for a core)".to_owned(),
    };
    let resume = if load.tls_resume {
        ", TLS sessions resumed"
    } else {
        ""
    };
    format!(
        "{}: {}-byte messages, {lifetime}{resume}, {mode}",
        protocol_title(load),
        load.size
    )
}

fn protocol_title(load: &Load) -> &'static str {
    load.protocol.title()
}

/// The blocks that set their own trials, window or warmup, as a clause of the run's
/// description: "; [[matrix]] #2 (rate 10000/s): 8 trials of 1s after 500ms".
fn block_timings(config: &crate::config::HarnessConfig) -> String {
    let mut out = String::new();
    for (i, matrix) in config.matrices.iter().enumerate() {
        let timing = matrix.timing();
        if matrix.capacity || timing.is_unset() {
            continue;
        }
        let rates: Vec<String> = matrix.rate.iter().map(|r| format!("{r}/s")).collect();
        let what = match (matrix.workload, rates.is_empty()) {
            (crate::workload::Workload::Broadcast, _) => " (broadcast)".to_owned(),
            (_, false) => format!(" (rate {})", rates.join(", ")),
            (_, true) => String::new(),
        };
        let block = timing.apply(&config.run);
        let _ = write!(
            out,
            "; [[matrix]] #{}{what}: {} trial(s) of {} after {}",
            i + 1,
            block.trials,
            humantime::format_duration(block.duration),
            humantime::format_duration(block.warmup),
        );
    }
    out
}

/// Renders the page.
pub fn render(
    manifest: &Manifest,
    summaries: &[CellSummary],
    capacities: &[CapacityResult],
) -> String {
    let mut out = String::new();
    let m = &manifest.machine;
    let run = &manifest.config.run;
    let _ = writeln!(out, "# echobench results\n");
    let _ = writeln!(
        out,
        "{} on `{}` ({}), git {}.{}\n",
        manifest.started_at,
        m.hostname,
        m.describe(),
        manifest.revision.describe(),
        if manifest.incomplete {
            " **Incomplete run** (interrupted or still running)."
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "Servers pinned to CPU {} and echo-client to CPU {}; {} interleaved trial(s) per cell, each {} measured after a {} warmup{}. CPU steal over the run: {}.\n",
        manifest.pinning.server_cpus,
        manifest.pinning.client_cpus,
        run.trials,
        humantime::format_duration(run.duration),
        humantime::format_duration(run.warmup),
        block_timings(&manifest.config),
        manifest
            .steal_percent
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:.2}%")),
    );
    let _ = writeln!(out, "Command: `{}`\n", manifest.command_line.join(" "));
    out.push_str(&super::capacity::markdown(capacities));
    if summaries.is_empty() {
        return out;
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Closed-loop tables: median round trips per second over the trials, (ratio to the best server of that load), and p99 latency read off the trials' merged HDR histograms. Flags: **N** noisy, **S** client saturated, **F** failed trials (see below).\n"
    );

    let mut current_family = String::new();
    // Open-loop cells achieve their rate by design: they are in the cost table, not here.
    for (load, cells) in loads(summaries).into_iter().filter(|(load, _)| {
        load.rate.is_none() && load.of_capacity.is_none() && load.publishers.is_none()
    }) {
        let title = family(&load);
        let mut servers: Vec<&str> = cells.iter().map(|c| c.cell.server.as_str()).collect();
        servers.dedup();
        if title != current_family {
            current_family = title.clone();
            let _ = writeln!(out, "\n## {title}\n");
            let _ = write!(out, "| connections |");
            for s in &servers {
                let _ = write!(out, " {s} |");
            }
            let _ = write!(out, "\n|---:|");
            for _ in &servers {
                let _ = write!(out, "---:|");
            }
            let _ = writeln!(out);
        }
        let best = cells
            .iter()
            .filter_map(|c| c.throughput.map(|t| t.median))
            .reduce(f64::max);
        let _ = write!(out, "| {} |", load.connections);
        for cell in &cells {
            let _ = write!(out, " {} |", entry(cell, best));
        }
        let _ = writeln!(out);
    }

    out.push_str(&cost_at_fixed_rates(summaries));
    out.push_str(&broadcasts(summaries));
    let _ = writeln!(out, "\n## Server cost\n");
    let _ = writeln!(
        out,
        "Medians over trials. CPU is the server's whole process group over the measured window; RSS per connection is (peak - idle) / connections.\n"
    );
    let _ = writeln!(
        out,
        "| cell | CPU per round trip | CPU use | peak RSS | RSS per connection |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for s in summaries {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.cell,
            s.server_cpu_us_per_round_trip
                .map_or_else(|| "-".to_owned(), |v| format!("{:.2} µs", v.median)),
            s.server_cpu_utilization
                .map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v.median * 100.0)),
            s.rss_peak.map_or_else(
                || "-".to_owned(),
                |v| format!("{:.1} MiB", v.median / 1048576.0)
            ),
            s.rss_per_connection.map_or_else(
                || "-".to_owned(),
                |v| format!("{:.1} KiB", v.median / 1024.0)
            ),
        );
    }

    let _ = writeln!(out, "\n## Flags\n");
    let noisy: Vec<String> = summaries
        .iter()
        .filter(|s| s.noisy)
        .map(|s| s.cell.to_string())
        .collect();
    let saturated: Vec<String> = summaries
        .iter()
        .filter(|s| s.client_saturated)
        .map(|s| s.cell.to_string())
        .collect();
    let failed: Vec<String> = summaries
        .iter()
        .filter(|s| s.trials_failed > 0)
        .map(|s| {
            format!(
                "{} ({} failed: {})",
                s.cell,
                s.trials_failed,
                s.failures.join("; ")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "- **N (noisy)**: throughput varied by more than {NOISY_CV_PERCENT}% (coefficient of variation) across trials, or a trial saw more than 5% CPU steal. {}",
        list(&noisy)
    );
    let _ = writeln!(
        out,
        "- **S (client saturated)**: echo-client used over 90% of its CPU in some trial, so the client may have set the pace; on loopback the client pays for the kernel's TCP work too. {}",
        list(&saturated)
    );
    let _ = writeln!(
        out,
        "- **F (failed)**: trials that could not run or whose server crashed. {}",
        list(&failed)
    );
    let _ = writeln!(
        out,
        "\n![throughput](throughput.svg)\n\n![p99 latency](p99.svg)"
    );
    out
}

/// The cost table: every open-loop cell, grouped by load across protocols, with the server's
/// CPU per round trip (the figure that repeats run to run) and its ratio to `tcp`'s.
fn cost_at_fixed_rates(summaries: &[CellSummary]) -> String {
    let open: Vec<&CellSummary> = summaries
        .iter()
        .filter(|s| s.cell.rate.is_some() && s.cell.publishers.is_none())
        .collect();
    if open.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n## Cost at a fixed rate\n");
    let _ = writeln!(
        out,
        "Open loop at a rate every server carries: the server's CPU per round trip (median over trials, with its CV), the ratio to the `tcp` server's at the same load, corrected latency from the merged histograms, and sends held back by an unanswered echo. These figures do not depend on who wins a race for a core.\n"
    );
    let _ = writeln!(
        out,
        "| server | load | offered | server CPU per round trip | CV | ratio to tcp | corrected p50 | p99 | p99.9 | late sends | trials (redone) |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let key = |s: &CellSummary| {
        (
            s.cell.connections,
            s.cell.size,
            s.cell.roundtrips,
            s.cell.of_capacity.map(f64::to_bits),
            s.cell
                .of_capacity
                .map_or(s.cell.rate.map(f64::to_bits), |_| None),
            s.cell.tls_resume,
        )
    };
    let mut keys: Vec<_> = open.iter().map(|s| key(s)).collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    for k in keys {
        let group: Vec<&&CellSummary> = open.iter().filter(|s| key(s) == k).collect();
        let floor = group
            .iter()
            .find(|s| s.cell.server == "tcp")
            .and_then(|s| s.server_cpu_us_per_round_trip.map(|v| v.median));
        for s in group {
            let c = &s.cell;
            let cpu = s.server_cpu_us_per_round_trip;
            let p = s.corrected.filter(|p| p.count > 0);
            let offered = match c.of_capacity {
                Some(f) => format!(
                    "{}/s ({:.0}% of capacity)",
                    count(c.rate.unwrap_or(0.0).round() as u64),
                    f * 100.0
                ),
                None => format!("{}/s", count(c.rate.unwrap_or(0.0).round() as u64)),
            };
            let _ = writeln!(
                out,
                "| {} | c={} size={} r={}{} | {offered} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |",
                c.server,
                c.connections,
                c.size,
                c.roundtrips,
                if c.tls_resume { " tls-resume" } else { "" },
                cpu.map_or_else(|| "-".to_owned(), |v| format!("{:.2} µs", v.median)),
                cpu.and_then(|v| v.cv_percent)
                    .map_or_else(|| "-".to_owned(), |cv| format!("{cv:.1}%")),
                cpu.zip(floor)
                    .map_or_else(|| "-".to_owned(), |(v, f)| format!("{:.3}", v.median / f)),
                p.map_or_else(|| "-".to_owned(), |p| duration(p.p50)),
                p.map_or_else(|| "-".to_owned(), |p| duration(p.p99)),
                p.map_or_else(|| "-".to_owned(), |p| duration(p.p999)),
                s.late_sends_percent
                    .map_or_else(|| "-".to_owned(), |l| format!("{l:.2}%")),
                s.trials_ok,
                s.trials_redone,
            );
        }
    }
    out
}

/// The broadcast table: per relay and load, what arrived and how late, and what was lost.
fn broadcasts(summaries: &[CellSummary]) -> String {
    let mut cells: Vec<&CellSummary> = summaries
        .iter()
        .filter(|s| s.broadcast.is_some() || s.cell.publishers.is_some())
        .collect();
    if cells.is_empty() {
        return String::new();
    }
    cells.sort_by(|a, b| {
        let key = |s: &CellSummary| {
            (
                s.cell.publishers,
                s.cell.rate.map(f64::to_bits),
                s.cell.size,
                s.cell.connections,
                s.cell.server_index,
            )
        };
        key(a).cmp(&key(b))
    });
    let mut out = String::new();
    let _ = writeln!(out, "\n## Broadcast\n");
    let _ = writeln!(
        out,
        "Every connection subscribes to the server's relay and the publishers among them send at the offered rate in total; every delivery is timed at its receiver, from the message's send to its arrival there (corrected: from when the schedule had it due, so a publisher held back by the relay does not hide the wait). Deliveries/s are those that arrived within the measured window (median over trials); latency from the trials' merged histograms; slowest = until a message's last subscriber had it (median of the trials' p99); server CPU per delivery over the window; counts summed over trials after each trial's drain.\n"
    );
    let _ = writeln!(
        out,
        "| server | subscribers | publishers | offered | deliveries/s | delivery p50 | p99 | corrected p99 | slowest p99 | server CPU per delivery | missing | dropped | trials (redone) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let dash = || "-".to_owned();
    for s in cells {
        let c = &s.cell;
        let b = s.broadcast.clone().unwrap_or_default();
        let p = s.latency.filter(|p| p.count > 0);
        let corrected = s.corrected.filter(|p| p.count > 0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |",
            c.server,
            count(u64::from(c.connections)),
            c.publishers.unwrap_or(0),
            c.rate.map_or_else(
                || "closed loop".to_owned(),
                |r| format!("{}/s", count(r.round() as u64))
            ),
            b.deliveries_per_s
                .map_or_else(dash, |d| count(d.median.round() as u64)),
            p.map_or_else(dash, |p| duration(p.p50)),
            p.map_or_else(dash, |p| duration(p.p99)),
            corrected.map_or_else(dash, |p| duration(p.p99)),
            b.slowest_p99_ns
                .map_or_else(dash, |v| duration(v.median.round() as u64)),
            s.server_cpu_us_per_round_trip
                .map_or_else(dash, |v| format!("{:.2} µs", v.median)),
            count(b.counts.missing),
            count(b.counts.subscribers_dropped),
            s.trials_ok,
            s.trials_redone,
        );
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "None.".to_owned()
    } else {
        format!("Cells: {}.", items.join(", "))
    }
}

fn entry(cell: &CellSummary, best: Option<f64>) -> String {
    let mut text = match cell.throughput {
        Some(t) => {
            let ratio = best.map(|b| t.median / b).unwrap_or(1.0);
            format!("{} ({ratio:.2})", count(t.median.round() as u64))
        }
        None => "-".to_owned(),
    };
    if let Some(p) = cell.latency.filter(|p| p.count > 0) {
        let _ = write!(text, " · p99 {}", duration(p.p99));
    }
    let mut flags = String::new();
    if cell.noisy {
        flags.push('N');
    }
    if cell.client_saturated {
        flags.push('S');
    }
    if cell.trials_failed > 0 {
        flags.push('F');
    }
    if !flags.is_empty() {
        let _ = write!(text, " **{flags}**");
    }
    text
}
