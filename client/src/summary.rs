//! The human-readable summary printed on stdout after a run (wrk/oha-like): throughput, the
//! latency percentiles, errors, the client's own load and any flag that qualifies the result.

use std::fmt::Write;

use echobench_core::config::TlsVersion;
use echobench_core::format::{count, duration};
use echobench_core::latency::Percentiles;
use echobench_core::report::Report;
use echobench_core::thresholds;

fn bytes_per_second(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB/s", b / 1e6)
    } else {
        format!("{:.1} kB/s", b / 1e3)
    }
}

fn latency_row(out: &mut String, name: &str, p: &Percentiles) {
    if p.count == 0 {
        let _ = writeln!(out, "  {name:<12} (no samples)");
        return;
    }
    let _ = write!(out, "  {name:<12}");
    for v in [p.p50, p.p90, p.p99, p.p999, p.p9999, p.max] {
        let _ = write!(out, "{:>10}", duration(v));
    }
    let _ = writeln!(out);
}

/// `--stages`: one row per stage reached — its level, what it achieved, its latency (corrected
/// in open loop), its errors, and its own --slo verdict.
fn stage_rows(out: &mut String, report: &Report) {
    if report.stages.is_empty() {
        return;
    }
    let open_loop = report.config.rate.is_some();
    let level = |v: f64| {
        if open_loop {
            format!("{}/s", count(v.round() as u64))
        } else {
            count(v.round() as u64)
        }
    };
    let _ = writeln!(
        out,
        "  Stages       {:<14}{:<24}{:>12}{:>10}{:>10}{:>8}  slo",
        "window",
        if open_loop { "rate" } else { "connections" },
        "achieved",
        "p50",
        "p99",
        "errors"
    );
    let mut start = std::time::Duration::ZERO;
    for stage in &report.stages {
        let end = start + stage.record.duration;
        let latency = stage.corrected.as_ref().unwrap_or(&stage.round_trip);
        let slo = stage.slo.as_ref().map_or("", |checks| {
            if checks.iter().all(|c| c.met) {
                "met"
            } else {
                "BREACHED"
            }
        });
        let moves = if stage.from == stage.to {
            level(stage.to)
        } else {
            format!("{} -> {}", level(stage.from), level(stage.to))
        };
        let _ = writeln!(
            out,
            "    {:<11}{:<14}{:<24}{:>12}{:>10}{:>10}{:>8}  {slo}",
            stage.stage + 1,
            format!("{:.1}s-{:.1}s", start.as_secs_f64(), end.as_secs_f64()),
            moves,
            format!("{:.0}/s", stage.round_trips_per_s),
            duration(latency.p50),
            duration(latency.p99),
            count(stage.record.errors)
        );
        start = end;
    }
    let _ = writeln!(out);
}

/// The echo workload's rows: round trips, transfer, connections, TLS, late sends, latency.
fn echo_rows(out: &mut String, report: &Report) {
    let c = &report.config;
    let s = &report.summary;
    let _ = writeln!(
        out,
        "  Round trips  {} completed, {:.1}/s",
        count(s.round_trips),
        s.round_trips_per_s
    );
    let _ = writeln!(
        out,
        "  Transfer     sent {}, received {}",
        bytes_per_second(s.bytes_sent_per_s),
        bytes_per_second(s.bytes_received_per_s)
    );
    let _ = writeln!(
        out,
        "  Connections  {} opened, {} closed; {} round trips in flight at the deadline (not counted)",
        count(s.connections_opened),
        count(s.connections_closed),
        count(s.in_flight_at_deadline)
    );
    if let Some(tls) = s.tls {
        let version = c
            .tls
            .as_ref()
            .and_then(|t| t.version)
            .map_or("1.2 or 1.3", TlsVersion::name);
        let resume = if c.tls.as_ref().is_some_and(|t| t.resume) {
            "resumption on"
        } else {
            "full handshakes (no --tls-resume)"
        };
        let _ = writeln!(
            out,
            "  TLS          {} handshakes, {} resumed; TLS {version}, {resume}",
            count(tls.handshakes),
            count(tls.resumed)
        );
    }
    if let Some(late) = s.late_sends {
        let _ = writeln!(
            out,
            "  Late sends   {} held back by an unanswered echo or a reconnect; {} late by the client (> 100 µs on a free connection)",
            count(late),
            count(s.pacer_late_sends.unwrap_or(0))
        );
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  Latency     {:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let round_trip_name = if c.rate.is_some() {
        "uncorrected"
    } else {
        "round trip"
    };
    latency_row(out, round_trip_name, &report.latency.round_trip);
    if let Some(corrected) = &report.latency.corrected {
        latency_row(out, "corrected", corrected);
    }
    if let Some(lag) = &report.latency.send_lag {
        latency_row(out, "send lag", lag);
    }
    latency_row(out, "connect", &report.latency.connect);
    if let Some(phases) = &report.latency.connect_phases {
        latency_row(out, "  tcp", &phases.tcp);
        if let Some(tls) = &phases.tls {
            latency_row(out, "  tls", tls);
        }
        if let Some(upgrade) = &phases.upgrade {
            latency_row(out, "  upgrade", upgrade);
        }
    }
    let _ = writeln!(out);
    stage_rows(out, report);
}

/// `--workload broadcast`: what was published and delivered, exactly, and the latencies.
fn broadcast_rows(
    out: &mut String,
    report: &Report,
    b: &echobench_core::broadcast::BroadcastSummary,
) {
    let _ = writeln!(
        out,
        "  Broadcast    {} published by {} of {} subscribers; {} of {} deliveries ({:.1}/s arrived in the window){}",
        count(b.counts.published),
        b.publishers,
        b.subscribers,
        count(b.counts.delivered),
        count(b.counts.deliveries_expected),
        b.deliveries_per_s,
        if b.drained {
            ""
        } else {
            "; NOT drained within --timeout"
        }
    );
    let _ = writeln!(
        out,
        "               {} missing, {} duplicated, {} out of order, {} malformed; {} subscribers dropped",
        count(b.counts.missing),
        count(b.counts.duplicated),
        count(b.counts.out_of_order),
        count(b.counts.malformed),
        count(b.counts.subscribers_dropped)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  Latency     {:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    latency_row(out, "delivery", &b.delivery);
    // Open loop: from each publish's due time (see the README's "Broadcast").
    if let Some(corrected) = &report.latency.corrected {
        latency_row(out, "  corrected", corrected);
    }
    latency_row(out, "slowest sub", &b.slowest);
    let _ = writeln!(out);
}

/// The summary text for `report`.
pub fn render(report: &Report) -> String {
    let c = &report.config;
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "echo-client {}: {} ({} at {})",
        report.tool.version, report.target.url, report.target.protocol, report.target.addr
    );
    let lifetime = match c.roundtrips {
        0 => "each kept for the whole run".to_owned(),
        r => format!("each replaced after {r} round trips"),
    };
    let mode = match (c.rate, c.broadcast.is_some()) {
        (Some(rate), false) => format!("open loop at {rate} round trips/s"),
        (None, false) => "closed loop".to_owned(),
        (Some(rate), true) => format!("broadcast, {rate} messages/s published in total"),
        (None, true) => format!(
            "broadcast, closed loop: {} of each publisher's own messages in flight",
            c.pipeline
        ),
    };
    let _ = writeln!(
        out,
        "  {} connections, {lifetime}; {}-byte messages; {mode}; {} threads",
        c.connections, c.size, c.threads
    );
    let _ = writeln!(
        out,
        "  measured {:.2}s after a {} warmup{}",
        report.measured_s,
        humantime::format_duration(c.warmup),
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let _ = writeln!(out);
    match &report.broadcast {
        Some(b) => broadcast_rows(&mut out, report, b),
        None => echo_rows(&mut out, report),
    }
    if report.errors.kinds.is_empty() {
        let _ = writeln!(out, "  Errors       none");
    } else {
        let _ = writeln!(out, "  Errors       {} in all", count(s.errors));
        for (kind, entry) in &report.errors.kinds {
            let sample = entry.samples.first().map_or("", String::as_str);
            let _ = writeln!(
                out,
                "    {:<20}{:>10}  {sample}",
                kind.name(),
                count(entry.count)
            );
        }
    }
    if let Some(slo) = &report.slo {
        let verdict = match (slo.met, slo.aborted) {
            (_, true) => "breached; the run was stopped by --slo-abort",
            (true, false) => "met",
            (false, false) => "breached",
        };
        let _ = writeln!(out, "  SLO          {verdict}");
        for check in &slo.checks {
            let _ = writeln!(
                out,
                "    {:<20}{:>12}  {}",
                check.limit,
                check.shown,
                if check.met { "ok" } else { "BREACHED" }
            );
        }
    }
    let l = &report.client;
    let _ = writeln!(
        out,
        "  Client       CPU {:.2}s = {:.0}% of {} CPU; busiest thread {:.0}%{}",
        l.cpu_s,
        l.utilization * 100.0,
        l.capacity_cpus,
        l.max_thread_utilization * 100.0,
        l.cpu_us_per_round_trip
            .map(|us| format!("; {us:.2}µs CPU per round trip"))
            .unwrap_or_default()
    );
    if let Some(steal) = l.steal_percent {
        let _ = writeln!(out, "  Machine      CPU steal {steal:.1}%");
    }
    let f = &report.flags;
    let mut flags = Vec::new();
    if f.client_saturated {
        flags.push(format!(
            "client_saturated: the client used over {:.0}% of its CPU, so it may have set the pace, not the server",
            thresholds::CLIENT_SATURATED * 100.0
        ));
    }
    if f.high_steal {
        flags.push(format!(
            "high_steal: over {:.0}% of CPU time was stolen by the host; repeat the run",
            thresholds::HIGH_STEAL_PERCENT
        ));
    }
    if f.all_failed {
        flags.push("all_failed: not one round trip completed".to_owned());
    }
    if flags.is_empty() {
        let _ = writeln!(out, "  Flags        none");
    } else {
        for flag in flags {
            let _ = writeln!(out, "  Flag         {flag}");
        }
    }
    out
}
