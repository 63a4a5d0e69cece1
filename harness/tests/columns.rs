//! The CSV headers scripts depend on (snapshots), and that results/README.md documents every
//! column.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used)]

use echo_harness::config::HarnessConfig;
use echo_harness::export::{capacity, comparison, raw, summary};

const RAW: &str = "trial,attempt,cell_id,server,protocol,connections,size,roundtrips,rate,\
rate_of_capacity,tls_resume,publishers,status,redone,reason,started_at,measured_s,round_trips,round_trips_per_s,errors,errors_connect_refused,\
errors_connect_timeout,errors_connect_failed,errors_handshake_failed,errors_tls_failed,errors_send_failed,\
errors_closed_by_peer,errors_round_trip_timeout,errors_echo_mismatch,errors_http_status,\
errors_protocol_error,in_flight_at_deadline,connections_opened,latency_p50_us,latency_p90_us,\
latency_p99_us,latency_p999_us,latency_max_us,connect_p50_us,connect_p99_us,\
tls_handshake_p50_us,tls_handshake_p99_us,tls_handshakes,tls_resumed,corrected_p50_us,\
corrected_p99_us,late_sends,pacer_late_sends,send_lag_p99_us,client_cpu_utilization,\
client_cpu_us_per_round_trip,\
client_saturated,steal_percent,server_cpu_s,server_cpu_utilization,\
server_cpu_us_per_round_trip,server_rss_idle_mib,server_rss_peak_mib,\
server_rss_per_connection_kib,published,deliveries_expected,delivered,missing,duplicated,\
out_of_order,malformed,subscribers_dropped,deliveries_per_s,slowest_p99_us,report_file,client_args";

const SUMMARY: &str = "cell_id,server,protocol,connections,size,roundtrips,rate,\
rate_of_capacity,tls_resume,publishers,attempt,trials_ok,trials_failed,trials_redone,rps_median,rps_mean,rps_min,\
rps_max,rps_cv_percent,rps_ci95_low,rps_ci95_high,latency_p50_us,latency_p90_us,\
latency_p99_us,latency_p999_us,latency_max_us,corrected_p50_us,corrected_p99_us,\
corrected_p999_us,late_sends_percent,server_cpu_us_per_round_trip,server_cpu_cv_percent,\
server_cpu_utilization,server_rss_peak_mib,server_rss_per_connection_kib,errors,\
max_steal_percent,noisy,client_saturated,deliveries_per_s,slowest_p99_us,missing,\
subscribers_dropped,failures";

const CAPACITY: &str = "server,protocol,mode,connections,size,roundtrips,publishers,slo,capacity_rps,\
capacity_ci95_low_rps,capacity_ci95_high_rps,capacity_method,capacity_connections,per_connection_rate,\
cv_percent,searches,estimates,ends,confirmed,probes,probes_redone,limited_by,corrected_p50_us,\
corrected_p99_us,corrected_p999_us,late_sends_percent,server_cpu_us_per_round_trip,\
client_cpu_utilization";

const PROBES: &str = "server,protocol,connections,size,roundtrips,publishers,search,probe,again,value,\
probe_connections,offered_rps,achieved_rps,verdict,redone,reason,corrected_p50_us,\
corrected_p99_us,corrected_p999_us,errors,late_sends_percent,pacer_late_percent,\
client_cpu_utilization,steal_percent,server_cpu_us_per_round_trip,slo_checks,report_file";

const COMPARISON: &str = "protocol,connections,size,roundtrips,rate,rate_of_capacity,tls_resume,publishers,hyper_rps,hyper_rps_ratio,\
axum_rps,axum_rps_ratio,tungstenite_rps,tungstenite_rps_ratio,axum-ws_rps,axum-ws_rps_ratio,\
tcp_rps,tcp_rps_ratio,tcp-relay_rps,tcp-relay_rps_ratio,hyper_p99_us,hyper_p99_ratio,axum_p99_us,axum_p99_ratio,\
tungstenite_p99_us,tungstenite_p99_ratio,axum-ws_p99_us,axum-ws_p99_ratio,tcp_p99_us,\
tcp_p99_ratio,tcp-relay_p99_us,tcp-relay_p99_ratio";

fn servers() -> Vec<String> {
    HarnessConfig::default_config()
        .unwrap()
        .servers
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// raw.csv, summary.csv, comparison.csv (default servers), capacity.csv and probes.csv have
/// exactly these headers.
#[test]
fn header_snapshots() {
    assert_eq!(raw::header().join(","), RAW);
    assert_eq!(capacity::header().join(","), CAPACITY);
    assert_eq!(capacity::probe_header().join(","), PROBES);
    assert_eq!(summary::header().join(","), SUMMARY);
    assert_eq!(comparison::header(&servers()).join(","), COMPARISON);
}

/// Every column name appears, in backquotes, in results/README.md.
#[test]
fn every_column_is_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/README.md"))
            .unwrap();
    let mut missing = Vec::new();
    for column in raw::header()
        .into_iter()
        .chain(summary::header())
        .chain(capacity::header())
        .chain(capacity::probe_header())
    {
        if !readme.contains(&format!("`{column}`")) {
            missing.push(column);
        }
    }
    for pattern in [
        "`<server>_rps`",
        "`<server>_rps_ratio`",
        "`<server>_p99_us`",
        "`<server>_p99_ratio`",
    ] {
        if !readme.contains(pattern) {
            missing.push(pattern.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented in results/README.md: {missing:?}"
    );
}
