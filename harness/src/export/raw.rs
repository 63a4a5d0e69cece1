//! `raw.csv`: one row per trial with every field (the column dictionary is results/README.md).

use echobench_core::error::ErrorKind;

use super::{micros, num};
use crate::trial::TrialResult;

/// The columns of raw.csv.
pub fn header() -> Vec<String> {
    let mut columns: Vec<String> = [
        "trial",
        "attempt",
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
        "status",
        "redone",
        "reason",
        "started_at",
        "measured_s",
        "round_trips",
        "round_trips_per_s",
        "errors",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(ErrorKind::ALL.map(|k| format!("errors_{}", k.name())));
    columns.extend(
        [
            "in_flight_at_deadline",
            "connections_opened",
            "latency_p50_us",
            "latency_p90_us",
            "latency_p99_us",
            "latency_p999_us",
            "latency_max_us",
            "connect_p50_us",
            "connect_p99_us",
            "tls_handshake_p50_us",
            "tls_handshake_p99_us",
            "tls_handshakes",
            "tls_resumed",
            "corrected_p50_us",
            "corrected_p99_us",
            "late_sends",
            "pacer_late_sends",
            "send_lag_p99_us",
            "client_cpu_utilization",
            "client_cpu_us_per_round_trip",
            "client_saturated",
            "steal_percent",
            "server_cpu_s",
            "server_cpu_utilization",
            "server_cpu_us_per_round_trip",
            "server_rss_idle_mib",
            "server_rss_peak_mib",
            "server_rss_per_connection_kib",
            "published",
            "deliveries_expected",
            "delivered",
            "missing",
            "duplicated",
            "out_of_order",
            "malformed",
            "subscribers_dropped",
            "deliveries_per_s",
            "slowest_p99_us",
            "report_file",
            "client_args",
        ]
        .map(String::from),
    );
    columns
}

/// One row per trial, aligned with [`header`].
pub fn rows(results: &[TrialResult]) -> Vec<Vec<String>> {
    results.iter().map(row).collect()
}

fn row(t: &TrialResult) -> Vec<String> {
    let c = &t.cell;
    let mut row = vec![
        t.trial.to_string(),
        t.attempt.to_string(),
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
        t.status.as_str().to_owned(),
        t.redone.clone(),
        // The whole reason (a failure's stderr tail included) on one line.
        t.reason
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join(" | "),
        humantime::format_rfc3339_millis(t.started_at).to_string(),
    ];
    let r = t.report.as_deref();
    let mut push = |value: String| row.push(value);
    push(
        r.map(|r| format!("{:.6}", r.measured_s))
            .unwrap_or_default(),
    );
    push(
        r.map(|r| r.summary.round_trips.to_string())
            .unwrap_or_default(),
    );
    push(num(r.map(|r| r.summary.round_trips_per_s), 1));
    push(r.map(|r| r.summary.errors.to_string()).unwrap_or_default());
    for kind in ErrorKind::ALL {
        push(
            r.map(|r| r.errors.count(kind).to_string())
                .unwrap_or_default(),
        );
    }
    push(
        r.map(|r| r.summary.in_flight_at_deadline.to_string())
            .unwrap_or_default(),
    );
    push(
        r.map(|r| r.summary.connections_opened.to_string())
            .unwrap_or_default(),
    );
    let latency = r.map(|r| &r.latency.round_trip).filter(|p| p.count > 0);
    for value in [
        latency.map(|p| p.p50),
        latency.map(|p| p.p90),
        latency.map(|p| p.p99),
        latency.map(|p| p.p999),
        latency.map(|p| p.max),
    ] {
        push(value.map(micros).unwrap_or_default());
    }
    let connect = r.map(|r| &r.latency.connect).filter(|p| p.count > 0);
    push(connect.map(|p| micros(p.p50)).unwrap_or_default());
    push(connect.map(|p| micros(p.p99)).unwrap_or_default());
    let handshake = r
        .and_then(|r| r.latency.connect_phases.as_ref())
        .and_then(|p| p.tls.as_ref())
        .filter(|p| p.count > 0);
    push(handshake.map(|p| micros(p.p50)).unwrap_or_default());
    push(handshake.map(|p| micros(p.p99)).unwrap_or_default());
    let tls = r.and_then(|r| r.summary.tls);
    push(tls.map(|t| t.handshakes.to_string()).unwrap_or_default());
    push(tls.map(|t| t.resumed.to_string()).unwrap_or_default());
    let corrected = r
        .and_then(|r| r.latency.corrected.as_ref())
        .filter(|p| p.count > 0);
    push(corrected.map(|p| micros(p.p50)).unwrap_or_default());
    push(corrected.map(|p| micros(p.p99)).unwrap_or_default());
    push(
        r.and_then(|r| r.summary.late_sends)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    );
    push(
        r.and_then(|r| r.summary.pacer_late_sends)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    );
    push(
        r.and_then(|r| r.latency.send_lag.as_ref())
            .filter(|p| p.count > 0)
            .map(|p| micros(p.p99))
            .unwrap_or_default(),
    );
    push(num(r.map(|r| r.client.utilization), 4));
    push(num(r.and_then(|r| r.client.cpu_us_per_round_trip), 4));
    push(
        r.map(|r| r.flags.client_saturated.to_string())
            .unwrap_or_default(),
    );
    push(num(t.steal_percent(), 3));
    let server = t.server;
    push(num(server.and_then(|s| s.cpu).map(|d| d.as_secs_f64()), 6));
    push(num(t.server_cpu_utilization(), 4));
    push(num(t.server_cpu_us_per_round_trip(), 4));
    push(num(server.map(|s| s.rss_idle as f64 / 1048576.0), 3));
    push(num(
        server
            .and_then(|s| s.rss_peak)
            .map(|b| b as f64 / 1048576.0),
        3,
    ));
    push(num(t.rss_per_connection().map(|b| b / 1024.0), 3));
    let b = r.and_then(|r| r.broadcast.as_ref());
    for value in [
        b.map(|b| b.counts.published),
        b.map(|b| b.counts.deliveries_expected),
        b.map(|b| b.counts.delivered),
        b.map(|b| b.counts.missing),
        b.map(|b| b.counts.duplicated),
        b.map(|b| b.counts.out_of_order),
        b.map(|b| b.counts.malformed),
        b.map(|b| b.counts.subscribers_dropped),
    ] {
        push(value.map(|v| v.to_string()).unwrap_or_default());
    }
    push(num(b.map(|b| b.deliveries_per_s), 1));
    push(
        b.filter(|b| b.slowest.count > 0)
            .map(|b| micros(b.slowest.p99))
            .unwrap_or_default(),
    );
    push(t.report_file.clone().unwrap_or_default());
    push(t.client_args.join(" "));
    row
}
