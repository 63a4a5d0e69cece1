//! `capacity.csv` (one row per server and load: the capacity under the SLO with its interval)
//! and `probes.csv` (every probe every search made, with what it measured and why it counted
//! or not). The column dictionary is results/README.md.

use crate::capacity::search::Verdict;
use crate::capacity::settings::Mode;
use crate::capacity::{CapacityResult, ProbeRecord};

use super::{micros, num};

/// The columns of capacity.csv.
pub fn header() -> Vec<String> {
    [
        "server",
        "protocol",
        "mode",
        "connections",
        "size",
        "roundtrips",
        "publishers",
        "slo",
        "capacity_rps",
        "capacity_ci95_low_rps",
        "capacity_ci95_high_rps",
        "capacity_method",
        "capacity_connections",
        "per_connection_rate",
        "cv_percent",
        "searches",
        "estimates",
        "ends",
        "confirmed",
        "probes",
        "probes_redone",
        "limited_by",
        "corrected_p50_us",
        "corrected_p99_us",
        "corrected_p999_us",
        "late_sends_percent",
        "server_cpu_us_per_round_trip",
        "client_cpu_utilization",
    ]
    .map(String::from)
    .to_vec()
}

/// One row per target.
pub fn rows(results: &[CapacityResult]) -> Vec<Vec<String>> {
    results.iter().map(row).collect()
}

fn row(r: &CapacityResult) -> Vec<String> {
    let estimate = r.capacity();
    // Connections mode: the interval is over connection counts; as rates it scales by the
    // per-connection rate.
    let scale = match r.mode {
        Mode::Rate => 1.0,
        Mode::Connections => r.per_connection_rate.unwrap_or(0.0),
    };
    let ci = estimate.and_then(|e| e.ci95);
    let at = r.at_capacity().and_then(|p| p.measured.as_ref());
    let t = &r.target;
    vec![
        t.server.clone(),
        t.protocol.to_string(),
        r.mode.as_str().to_owned(),
        match r.mode {
            Mode::Rate => t.connections.to_string(),
            Mode::Connections => String::new(),
        },
        t.size.to_string(),
        t.roundtrips.to_string(),
        t.publishers.map(|p| p.to_string()).unwrap_or_default(),
        r.slo.clone(),
        num(r.capacity_rps(), 0),
        num(ci.map(|c| c.0.max(0.0) * scale), 0),
        num(ci.map(|c| c.1 * scale), 0),
        estimate
            .map(|e| e.method.as_str().to_owned())
            .unwrap_or_default(),
        match r.mode {
            Mode::Rate => String::new(),
            Mode::Connections => num(estimate.map(|e| e.value), 1),
        },
        num(r.per_connection_rate, 3),
        num(r.searches().and_then(|s| s.cv_percent), 2),
        r.estimates.len().to_string(),
        r.estimates
            .iter()
            .map(|e| format!("{e:.0}"))
            .collect::<Vec<_>>()
            .join(";"),
        r.ends
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        format!("{}/{}", r.confirmed, r.confirmations),
        r.probes.len().to_string(),
        r.redone().to_string(),
        r.limited_by.clone().unwrap_or_default(),
        at.map(|m| micros(m.p50_ns)).unwrap_or_default(),
        at.map(|m| micros(m.p99_ns)).unwrap_or_default(),
        at.map(|m| micros(m.p999_ns)).unwrap_or_default(),
        num(at.map(late_percent), 3),
        num(at.and_then(|m| m.server_cpu_us_per_round_trip), 3),
        num(at.map(|m| m.client_utilization), 3),
    ]
}

fn late_percent(m: &crate::capacity::Measured) -> f64 {
    100.0 * m.late_sends as f64 / m.round_trips.max(1) as f64
}

/// The columns of probes.csv.
pub fn probe_header() -> Vec<String> {
    [
        "server",
        "protocol",
        "connections",
        "size",
        "roundtrips",
        "publishers",
        "search",
        "probe",
        "again",
        "value",
        "probe_connections",
        "offered_rps",
        "achieved_rps",
        "verdict",
        "redone",
        "reason",
        "corrected_p50_us",
        "corrected_p99_us",
        "corrected_p999_us",
        "errors",
        "late_sends_percent",
        "pacer_late_percent",
        "client_cpu_utilization",
        "steal_percent",
        "server_cpu_us_per_round_trip",
        "slo_checks",
        "report_file",
    ]
    .map(String::from)
    .to_vec()
}

/// One row per probe of every target, in the order they ran within each target.
pub fn probe_rows(results: &[CapacityResult]) -> Vec<Vec<String>> {
    results
        .iter()
        .flat_map(|r| r.probes.iter().map(move |p| probe_row(r, p)))
        .collect()
}

fn probe_row(r: &CapacityResult, p: &ProbeRecord) -> Vec<String> {
    let t = &r.target;
    let m = p.measured.as_ref();
    let verdict = match (p.verdict, m) {
        (Some(Verdict::Pass), _) => "pass",
        (Some(Verdict::Fail), _) => "fail",
        (None, Some(_)) => "untrusted",
        (None, None) => "failed",
    };
    vec![
        t.server.clone(),
        t.protocol.to_string(),
        match t.connections {
            0 => String::new(),
            c => c.to_string(),
        },
        t.size.to_string(),
        t.roundtrips.to_string(),
        t.publishers.map(|p| p.to_string()).unwrap_or_default(),
        p.search.to_string(),
        p.index.to_string(),
        p.again.to_string(),
        format!("{:.0}", p.value),
        p.load.connections.to_string(),
        format!("{:.0}", p.load.rate),
        num(m.map(|m| m.achieved), 1),
        verdict.to_owned(),
        p.redone.to_string(),
        p.reason.clone(),
        m.map(|m| micros(m.p50_ns)).unwrap_or_default(),
        m.map(|m| micros(m.p99_ns)).unwrap_or_default(),
        m.map(|m| micros(m.p999_ns)).unwrap_or_default(),
        m.map(|m| m.errors.to_string()).unwrap_or_default(),
        num(m.map(late_percent), 3),
        num(
            m.map(|m| 100.0 * m.pacer_late_sends as f64 / m.sends.max(1) as f64),
            3,
        ),
        num(m.map(|m| m.client_utilization), 3),
        num(m.and_then(|m| m.steal_percent), 2),
        num(m.and_then(|m| m.server_cpu_us_per_round_trip), 3),
        m.map(|m| m.slo_checks.clone()).unwrap_or_default(),
        m.and_then(|m| m.report_file.clone()).unwrap_or_default(),
    ]
}

/// The capacity table of summary.md (empty without capacity searches).
pub fn markdown(results: &[CapacityResult]) -> String {
    use std::fmt::Write;
    let Some(first) = results.first() else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(out, "\n## Capacity under the SLO `{}`\n", first.slo);
    let what = match first.mode {
        Mode::Rate => "the offered rate (round trips per second)".to_owned(),
        Mode::Connections if first.target.publishers.is_some() => format!(
            "the number of subscribers, each receiving the {} messages per second published,",
            first.per_connection_rate.unwrap_or(0.0)
        ),
        Mode::Connections => format!(
            "the number of connections, each offering {} round trips per second,",
            first.per_connection_rate.unwrap_or(0.0)
        ),
    };
    let _ = writeln!(
        out,
        "For each server and load, {what} at which a probe meets the SLO over its window (corrected latency; errors; sends held back by an unanswered echo; achieved over offered) half the time, from a logistic fit over every probe of a first search and its confirmations (each starting at the value found before; a failure rechecked before a search believes it), with the fit's 95% interval (marked *mean of searches* where the probes had no knee to fit: every one passed, or every one failed). *Ratio to tcp*: that capacity over the `tcp` reference server's at the same connections and size — the floor. Every probe is in probes.csv.\n"
    );
    let _ = writeln!(
        out,
        "| server | load | capacity | 95% interval | ratio to tcp | searches | confirmed | corrected p99 at capacity | server CPU per round trip | note |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let t = &r.target;
        let estimate = r.capacity();
        let floor = results
            .iter()
            .find(|o| {
                // The floor: `tcp`, or for a broadcast the TCP relay.
                (o.target.server == "tcp"
                    || (t.publishers.is_some()
                        && o.target.protocol == echobench_core::Protocol::Tcp))
                    && o.target.connections == t.connections
                    && o.target.size == t.size
                    && o.target.roundtrips == t.roundtrips
                    && o.target.publishers == t.publishers
            })
            .and_then(|o| o.capacity().map(|e| e.value))
            .filter(|c| *c > 0.0);
        let at = r.at_capacity().and_then(|p| p.measured.as_ref());
        let mut load = match r.mode {
            Mode::Rate => format!("c={} size={} r={}", t.connections, t.size, t.roundtrips),
            Mode::Connections => format!("size={} r={}", t.size, t.roundtrips),
        };
        if let Some(publishers) = t.publishers {
            load = match (r.mode, r.per_connection_rate) {
                (Mode::Connections, Some(rate)) => format!(
                    "broadcast size={} publishers={publishers} at {rate}/s",
                    t.size
                ),
                _ => format!("broadcast {load} publishers={publishers}"),
            };
        }
        let value = |v: f64| match r.mode {
            Mode::Rate => format!("{} rt/s", echobench_core::format::count(v.round() as u64)),
            Mode::Connections if t.publishers.is_some() => format!("{v:.0} subscribers"),
            Mode::Connections => format!("{v:.0} connections"),
        };
        let mut note = r.limited_by.clone().unwrap_or_default();
        if r.ends.contains(&crate::capacity::search::End::AtMaximum) {
            note = format!("at least this (the search's maximum) {note}");
        }
        if estimate.is_some_and(|e| e.method == crate::capacity::Method::Searches) {
            note = format!("mean of searches {note}");
        }
        let _ = writeln!(
            out,
            "| {} | {load} | {} | {} | {} | {} | {}/{} | {} | {} | {} |",
            t.server,
            estimate.map_or_else(|| "-".to_owned(), |e| value(e.value)),
            estimate.and_then(|e| e.ci95).map_or_else(
                || "-".to_owned(),
                |(lo, hi)| format!("{} - {}", value(lo.max(0.0)), value(hi))
            ),
            match (estimate, floor) {
                (Some(e), Some(f)) => format!("{:.3}", e.value / f),
                _ => "-".to_owned(),
            },
            r.estimates.len(),
            r.confirmed,
            r.confirmations,
            at.map_or_else(
                || "-".to_owned(),
                |m| echobench_core::format::duration(m.p99_ns)
            ),
            at.and_then(|m| m.server_cpu_us_per_round_trip)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2} µs")),
            note.trim(),
        );
    }
    out
}
