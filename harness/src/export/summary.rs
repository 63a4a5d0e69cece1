//! `summary.csv`: one row per cell, over its trials.

use super::{micros, num};
use crate::aggregate::CellSummary;

/// The columns of summary.csv.
pub fn header() -> Vec<String> {
    [
        "cell_id",
        "server",
        "protocol",
        "connections",
        "size",
        "roundtrips",
        "rate",
        "rate_of_capacity",
        "tls_resume",
        "publishers",
        "attempt",
        "trials_ok",
        "trials_failed",
        "trials_redone",
        "rps_median",
        "rps_mean",
        "rps_min",
        "rps_max",
        "rps_cv_percent",
        "rps_ci95_low",
        "rps_ci95_high",
        "latency_p50_us",
        "latency_p90_us",
        "latency_p99_us",
        "latency_p999_us",
        "latency_max_us",
        "corrected_p50_us",
        "corrected_p99_us",
        "corrected_p999_us",
        "late_sends_percent",
        "server_cpu_us_per_round_trip",
        "server_cpu_cv_percent",
        "server_cpu_utilization",
        "server_rss_peak_mib",
        "server_rss_per_connection_kib",
        "errors",
        "max_steal_percent",
        "noisy",
        "client_saturated",
        "deliveries_per_s",
        "slowest_p99_us",
        "missing",
        "subscribers_dropped",
        "failures",
    ]
    .map(String::from)
    .to_vec()
}

/// One row per cell, aligned with [`header`].
pub fn rows(summaries: &[CellSummary]) -> Vec<Vec<String>> {
    summaries
        .iter()
        .map(|s| {
            let c = &s.cell;
            let t = s.throughput;
            let l = s.latency.filter(|p| p.count > 0);
            let corrected = s.corrected.filter(|p| p.count > 0);
            let b = s.broadcast.as_ref();
            vec![
                c.id(),
                c.server.clone(),
                c.protocol.to_string(),
                c.connections.to_string(),
                c.size.to_string(),
                c.roundtrips.to_string(),
                c.rate.map(|r| r.to_string()).unwrap_or_default(),
                c.of_capacity.map(|r| r.to_string()).unwrap_or_default(),
                c.tls_resume.to_string(),
                c.publishers.map(|p| p.to_string()).unwrap_or_default(),
                s.attempt.to_string(),
                s.trials_ok.to_string(),
                s.trials_failed.to_string(),
                s.trials_redone.to_string(),
                num(t.map(|t| t.median), 1),
                num(t.map(|t| t.mean), 1),
                num(t.map(|t| t.min), 1),
                num(t.map(|t| t.max), 1),
                num(t.and_then(|t| t.cv_percent), 2),
                num(t.and_then(|t| t.ci95).map(|c| c.0), 1),
                num(t.and_then(|t| t.ci95).map(|c| c.1), 1),
                l.map(|p| micros(p.p50)).unwrap_or_default(),
                l.map(|p| micros(p.p90)).unwrap_or_default(),
                l.map(|p| micros(p.p99)).unwrap_or_default(),
                l.map(|p| micros(p.p999)).unwrap_or_default(),
                l.map(|p| micros(p.max)).unwrap_or_default(),
                corrected.map(|p| micros(p.p50)).unwrap_or_default(),
                corrected.map(|p| micros(p.p99)).unwrap_or_default(),
                corrected.map(|p| micros(p.p999)).unwrap_or_default(),
                num(s.late_sends_percent, 3),
                num(s.server_cpu_us_per_round_trip.map(|v| v.median), 3),
                num(s.server_cpu_us_per_round_trip.and_then(|v| v.cv_percent), 2),
                num(s.server_cpu_utilization.map(|v| v.median), 3),
                num(s.rss_peak.map(|v| v.median / 1048576.0), 3),
                num(s.rss_per_connection.map(|v| v.median / 1024.0), 3),
                s.errors.to_string(),
                num(s.max_steal_percent, 3),
                s.noisy.to_string(),
                s.client_saturated.to_string(),
                num(b.and_then(|b| b.deliveries_per_s).map(|v| v.median), 1),
                b.and_then(|b| b.slowest_p99_ns)
                    .map(|v| micros(v.median.round() as u64))
                    .unwrap_or_default(),
                b.map(|b| b.counts.missing.to_string()).unwrap_or_default(),
                b.map(|b| b.counts.subscribers_dropped.to_string())
                    .unwrap_or_default(),
                s.failures
                    .iter()
                    .map(|f| f.lines().next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(" | "),
            ]
        })
        .collect()
}
