//! `--csv FILE`: one header line and one row per run, with a stable set of columns (the
//! header is snapshot-tested). Latencies are microseconds; absent values are empty cells.

use std::io;
use std::path::Path;

use crate::error::ErrorKind;
use echobench_core::latency::Percentiles;
use echobench_core::report::Report;

/// The column names, in order. Changing them is a breaking change for anyone's scripts.
pub fn header() -> Vec<String> {
    let mut columns: Vec<String> = [
        "schema_version",
        "url",
        "protocol",
        "connections",
        "roundtrips",
        "rate",
        "size",
        "ws_mode",
        "payload",
        "threads",
        "duration_s",
        "warmup_s",
        "measured_s",
        "interrupted",
        "round_trips",
        "round_trips_per_s",
        "bytes_sent_per_s",
        "bytes_received_per_s",
        "connections_opened",
        "connections_closed",
        "in_flight_at_deadline",
        "errors",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(ErrorKind::ALL.map(|kind| format!("errors_{}", kind.name())));
    for family in ["latency", "connect", "corrected"] {
        for p in PERCENTILE_COLUMNS {
            columns.push(format!("{family}_{p}_us"));
        }
    }
    columns.extend(
        [
            "late_sends",
            "pacer_late_sends",
            "send_lag_p50_us",
            "send_lag_p99_us",
            "send_lag_max_us",
            "client_cpu_s",
            "client_utilization",
            "client_max_thread_utilization",
            "client_cpu_us_per_round_trip",
            "steal_percent",
            "client_saturated",
            "high_steal",
            "all_failed",
        ]
        .map(String::from),
    );
    columns
}

const PERCENTILE_COLUMNS: [&str; 8] = ["mean", "p50", "p90", "p99", "p999", "p9999", "min", "max"];

fn micros(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1000.0)
}

fn percentiles(p: Option<&Percentiles>) -> Vec<String> {
    match p {
        None => vec![String::new(); PERCENTILE_COLUMNS.len()],
        Some(p) if p.count == 0 => vec![String::new(); PERCENTILE_COLUMNS.len()],
        Some(p) => vec![
            format!("{:.3}", p.mean / 1000.0),
            micros(p.p50),
            micros(p.p90),
            micros(p.p99),
            micros(p.p999),
            micros(p.p9999),
            micros(p.min),
            micros(p.max),
        ],
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The row for `report`, aligned with [`header`].
pub fn row(report: &Report) -> Vec<String> {
    let c = &report.config;
    let s = &report.summary;
    let mut row = vec![
        report.schema_version.to_string(),
        report.target.url.clone(),
        report.target.protocol.to_string(),
        c.connections.to_string(),
        c.roundtrips.to_string(),
        optional(c.rate),
        c.size.to_string(),
        serde_json::to_value(c.ws_mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        serde_json::to_value(c.payload)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        c.threads.to_string(),
        format!("{:.3}", c.duration.as_secs_f64()),
        format!("{:.3}", c.warmup.as_secs_f64()),
        format!("{:.6}", report.measured_s),
        report.interrupted.to_string(),
        s.round_trips.to_string(),
        format!("{:.1}", s.round_trips_per_s),
        format!("{:.1}", s.bytes_sent_per_s),
        format!("{:.1}", s.bytes_received_per_s),
        s.connections_opened.to_string(),
        s.connections_closed.to_string(),
        s.in_flight_at_deadline.to_string(),
        s.errors.to_string(),
    ];
    row.extend(ErrorKind::ALL.map(|kind| report.errors.count(kind).to_string()));
    row.extend(percentiles(Some(&report.latency.round_trip)));
    row.extend(percentiles(Some(&report.latency.connect)));
    row.extend(percentiles(report.latency.corrected.as_ref()));
    let l = &report.client;
    row.extend([
        optional(s.late_sends),
        optional(s.pacer_late_sends),
        optional(report.latency.send_lag.as_ref().map(|p| micros(p.p50))),
        optional(report.latency.send_lag.as_ref().map(|p| micros(p.p99))),
        optional(report.latency.send_lag.as_ref().map(|p| micros(p.max))),
        format!("{:.6}", l.cpu_s),
        format!("{:.4}", l.utilization),
        format!("{:.4}", l.max_thread_utilization),
        optional(l.cpu_us_per_round_trip.map(|v| format!("{v:.4}"))),
        optional(l.steal_percent.map(|v| format!("{v:.3}"))),
        report.flags.client_saturated.to_string(),
        report.flags.high_steal.to_string(),
        report.flags.all_failed.to_string(),
    ]);
    row
}

/// Writes the header and the row to `path` (atomically).
pub fn write(report: &Report, path: &Path) -> io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(header()).map_err(io::Error::other)?;
    writer.write_record(row(report)).map_err(io::Error::other)?;
    let bytes = writer
        .into_inner()
        .map_err(|err| io::Error::other(err.to_string()))?;
    super::write_atomically(path, &bytes)
}
