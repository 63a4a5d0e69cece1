//! Open loop against a server that stalls 200 ms every second: the corrected latency shows the
//! stall, the uncorrected latency hides it (coordinated omission). Margins are generous: the
//! assertions hold on a loaded machine, with no exact timing.

use std::time::Duration;

use echo_client::Config;
use echo_client::run::{RunOptions, run};
use echo_servers::{Fixture, Impl};

/// 1000 round trips/s over 4 connections for 3 s across two or three 200 ms stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_latency_reflects_stalls() {
    let srv = Fixture::builder(Impl::Tcp)
        .stall(Duration::from_secs(1), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let config = Config {
        connections: 4,
        rate: Some(1000.0),
        duration: Duration::from_secs(3),
        warmup: Duration::ZERO,
        threads: 1,
        ..Config::new(srv.url())
    };
    let report = run(config, RunOptions::default()).await.unwrap();
    let corrected = report
        .latency
        .corrected
        .expect("open loop reports corrected latency");
    let uncorrected = report.latency.round_trip;
    let ms = 1_000_000;
    // Each stall holds back ~50 sends per connection, each charged up to 200 ms.
    assert!(
        corrected.p99 >= 100 * ms,
        "corrected p99 {} ns",
        corrected.p99
    );
    assert!(
        corrected.max >= 150 * ms,
        "corrected max {} ns",
        corrected.max
    );
    // Only the one message in flight per connection per stall is slow when timed from its send.
    assert!(
        uncorrected.p99 < 50 * ms,
        "uncorrected p99 {} ns",
        uncorrected.p99
    );
    assert!(
        uncorrected.p50 < 20 * ms,
        "uncorrected p50 {} ns",
        uncorrected.p50
    );
    let late = report
        .summary
        .late_sends
        .expect("open loop reports late sends");
    assert!(late >= 100, "late sends {late}");
    // The schedule was kept: about 3000 round trips.
    assert!(
        (2500..=3100).contains(&report.summary.round_trips),
        "{}",
        report.summary.round_trips
    );
    assert_eq!(report.summary.errors, 0);
}

/// Without stalls the corrected and uncorrected latencies agree: the client's own timer
/// granularity is not charged to the server. (The warmup keeps out the first sends, which the
/// initial connects legitimately hold back. 20 ms between a connection's sends leaves room for
/// a machine busy with other tests; an echo slower than that is a late send, rightly, and
/// the median is unmoved by one.)
#[tokio::test]
async fn no_stall_no_correction() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    let config = Config {
        connections: 2,
        rate: Some(100.0),
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        threads: 1,
        ..Config::new(srv.url())
    };
    let report = run(config, RunOptions::default()).await.unwrap();
    let corrected = report.latency.corrected.unwrap();
    // At most one late send (1%): an echo held up over 20 ms by a machine running other tests.
    let late = report.summary.late_sends.unwrap();
    assert!(late <= 1, "{late} late sends");
    assert_eq!(corrected.count, report.latency.round_trip.count);
    assert_eq!(corrected.p50, report.latency.round_trip.p50);
    // Every send's lag behind its schedule is recorded, and counted apart from held sends.
    let lag = report
        .latency
        .send_lag
        .expect("open loop reports the send lag");
    assert_eq!(lag.count, report.summary.round_trips);
    assert!(report.summary.pacer_late_sends.is_some());
    assert!(
        (95..=103).contains(&report.summary.round_trips),
        "{}",
        report.summary.round_trips
    );
}
