//! The machine-readable outputs: the JSON report round-trips through its own schema type and
//! refuses other versions, histograms decode to the reported counts, the CSV header is stable
//! (snapshot), and the HDR interval log holds one interval per second.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use echo_client::export;
use echo_client::run::{RunOptions, run};
use echo_client::{Config, Report};
use echo_servers::{Fixture, Impl};

async fn sample_report(rate: Option<f64>, hdr_log: Option<std::path::PathBuf>) -> Report {
    let srv = Fixture::start(Impl::Tungstenite).await.unwrap();
    let config = Config {
        connections: 4,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(200),
        rate,
        threads: 2,
        ..Config::new(srv.url())
    };
    run(
        config,
        RunOptions {
            hdr_log,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The JSON report parses back into the same `Report`, and its histograms decode exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trips_through_the_schema() {
    let report = sample_report(Some(500.0), None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    export::json::write(&report, &path).unwrap();
    let back = Report::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.schema_version, 2);
    // The report gives its measurement back, and deriving a report from it changes nothing.
    let measurement = back.measurement().unwrap();
    assert_eq!(measurement.counts.round_trips, back.summary.round_trips);
    assert_eq!(measurement.timeline, back.timeline);
    let seconds: Vec<u32> = report.timeline.iter().map(|s| s.index).collect();
    assert_eq!(seconds, [0, 1], "one entry per second of the 1.5 s window");

    let round_trip = back.histograms.round_trip().unwrap();
    assert_eq!(round_trip.len(), back.summary.round_trips);
    assert_eq!(
        round_trip.value_at_quantile(0.99),
        back.latency.round_trip.p99
    );
    let corrected = back.histograms.corrected().unwrap().unwrap();
    assert_eq!(corrected.len(), back.summary.round_trips);
    assert_eq!(
        back.histograms.connect().unwrap().len(),
        back.summary.connections_opened
    );

    let mut value: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    value["schema_version"] = 3.into();
    let Err(err) = Report::from_json(&value.to_string()) else {
        panic!("a version 3 report was accepted");
    };
    assert!(
        err.to_string().contains("schema version 3 is newer"),
        "{err}"
    );
    // A version 1 report (before per-second histograms) says what to do with it.
    let Err(err) = Report::from_json("{\"schema_version\": 1}") else {
        panic!("a version 1 report was accepted");
    };
    let text = err.to_string();
    assert!(
        text.contains("re-run the load") && text.contains("CSV"),
        "{text}"
    );
}

/// The CSV header, which scripts depend on, is exactly this; the row matches it.
#[tokio::test]
async fn csv_header_snapshot() {
    let expected = "schema_version,url,protocol,connections,roundtrips,rate,size,ws_mode,payload,threads,\
duration_s,warmup_s,measured_s,interrupted,round_trips,round_trips_per_s,bytes_sent_per_s,\
bytes_received_per_s,connections_opened,connections_closed,in_flight_at_deadline,errors,\
errors_connect_refused,errors_connect_timeout,errors_connect_failed,errors_handshake_failed,errors_tls_failed,\
errors_send_failed,errors_closed_by_peer,errors_round_trip_timeout,errors_echo_mismatch,\
errors_http_status,errors_protocol_error,latency_mean_us,latency_p50_us,latency_p90_us,\
latency_p99_us,latency_p999_us,latency_p9999_us,latency_min_us,latency_max_us,connect_mean_us,\
connect_p50_us,connect_p90_us,connect_p99_us,connect_p999_us,connect_p9999_us,connect_min_us,\
connect_max_us,corrected_mean_us,corrected_p50_us,corrected_p90_us,corrected_p99_us,\
corrected_p999_us,corrected_p9999_us,corrected_min_us,corrected_max_us,late_sends,pacer_late_sends,\
send_lag_p50_us,send_lag_p99_us,send_lag_max_us,client_cpu_s,\
client_utilization,client_max_thread_utilization,client_cpu_us_per_round_trip,steal_percent,\
client_saturated,high_steal,all_failed";
    assert_eq!(export::csv::header().join(","), expected);

    let report = sample_report(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.csv");
    export::csv::write(&report, &path).unwrap();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header.join(","), expected);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), header.len());
    assert_eq!(&rows[0][14], report.summary.round_trips.to_string());
    assert_eq!(&rows[0][2], "websocket");
    assert_eq!(&rows[0][5], "", "no rate in closed loop");
}

/// The interval log has a header and one round-trip interval per second of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdr_interval_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rtt.hlog");
    let before = std::time::SystemTime::now();
    let report = sample_report(None, Some(path.clone())).await;
    let text = std::fs::read_to_string(&path).unwrap();
    // One header, stamped when the window opened (after the 200 ms warmup), not when the
    // file was created before the load.
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#[StartTime: "))
        .collect();
    assert_eq!(starts.len(), 1, "{text}");
    let start: f64 = starts[0]["#[StartTime: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start >= before + 0.2,
        "log starts {start}, run began {before}"
    );
    let intervals: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
        .collect();
    assert_eq!(intervals.len(), report.timeline.len());
    assert!(intervals[0].starts_with("0.000,1.000,"), "{}", intervals[0]);
    assert!(intervals.iter().all(|l| l.contains(",HISTF")));
    // The log's intervals hold every measured round trip.
    let mut total = 0;
    for line in intervals {
        let encoded = line.rsplit(',').next().unwrap();
        total += echobench_core::latency::decode(encoded).unwrap().len();
    }
    assert_eq!(total, report.summary.round_trips);
}
