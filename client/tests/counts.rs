//! Exact counts with `--total` and `--roundtrips` against every reference server: the numbers
//! a deterministic run must produce, whatever the thread count.

use std::time::Duration;

use echo_client::run::{RunOptions, run};
use echo_client::{Config, WsMode};
use echo_servers::{Fixture, Impl};

fn config(url: String, connections: u32, roundtrips: u64, total: u64, threads: usize) -> Config {
    Config {
        connections,
        roundtrips,
        total: Some(total),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        threads,
        ..Config::new(url)
    }
}

/// c=4, r=10, n=400: exactly 400 round trips over exactly 40 connections, on every server and
/// with one or two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_and_roundtrips_are_exact() {
    for imp in Impl::ALL {
        let srv = Fixture::start(imp).await.unwrap();
        for threads in [1, 2] {
            let report = run(
                config(srv.url(), 4, 10, 400, threads),
                RunOptions::default(),
            )
            .await
            .unwrap();
            let s = &report.summary;
            assert_eq!(s.errors, 0, "{imp}: {:?}", report.errors);
            assert_eq!(s.round_trips, 400, "{imp} t={threads}");
            assert_eq!(s.connections_opened, 40, "{imp} t={threads}");
            assert_eq!(s.connections_closed, 40, "{imp} t={threads}");
            assert_eq!(s.in_flight_at_deadline, 0, "{imp}");
            assert_eq!(report.latency.round_trip.count, 400, "{imp}");
            assert_eq!(report.latency.connect.count, 40, "{imp}");
            assert!(!report.interrupted && !report.flags.all_failed, "{imp}");
        }
    }
}

/// With r=0 every virtual client keeps one connection; the total still holds exactly.
#[tokio::test]
async fn kept_connections_with_a_total() {
    let srv = Fixture::start(Impl::Tungstenite).await.unwrap();
    let mut c = config(srv.url(), 3, 0, 101, 2);
    c.ws_mode = WsMode::Text;
    c.size = 4096;
    let report = run(c, RunOptions::default()).await.unwrap();
    assert_eq!(report.summary.round_trips, 101);
    assert_eq!(report.summary.connections_opened, 3);
    assert_eq!(report.summary.errors, 0);
}

/// Every message size the servers are tested with round-trips without errors.
#[tokio::test]
async fn message_sizes() {
    for imp in [Impl::Hyper, Impl::AxumWs, Impl::Tcp] {
        let srv = Fixture::start(imp).await.unwrap();
        for size in [0usize, 1, 16, 125, 126, 65536, 1 << 20] {
            if size == 0 && imp == Impl::Tcp {
                continue;
            }
            let mut c = config(srv.url(), 2, 2, 6, 1);
            c.size = size;
            let report = run(c, RunOptions::default()).await.unwrap();
            assert_eq!(
                report.summary.round_trips, 6,
                "{imp} size {size}: {:?}",
                report.errors
            );
        }
    }
}

/// In duration mode the per-second timeline partitions the measured window exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_adds_up() {
    let srv = Fixture::start(Impl::Hyper).await.unwrap();
    let c = Config {
        connections: 8,
        duration: Duration::from_millis(2500),
        warmup: Duration::from_millis(300),
        threads: 2,
        ..Config::new(srv.url())
    };
    let report = run(c, RunOptions::default()).await.unwrap();
    let seconds: Vec<u32> = report.timeline.iter().map(|s| s.index).collect();
    assert_eq!(seconds, [0, 1, 2]);
    let summed: u64 = report.timeline.iter().map(|s| s.round_trips).sum();
    assert_eq!(summed, report.summary.round_trips);
    // Each second carries its histogram, and the seconds' histograms add up to the total's.
    let mut merged = echobench_core::latency::histogram();
    for second in &report.timeline {
        assert_eq!(second.round_trip.len(), second.round_trips);
        echobench_core::latency::add(&mut merged, &second.round_trip);
    }
    assert_eq!(merged, report.histograms.round_trip().unwrap());
    assert!(
        (report.timeline[2].duration.as_secs_f64() - 0.5).abs() < 0.05,
        "{:?}",
        report.timeline[2]
    );
    assert!(
        (report.measured_s - 2.5).abs() < 0.05,
        "{}",
        report.measured_s
    );
    assert!(report.summary.round_trips > 0);
    assert!(report.summary.in_flight_at_deadline <= 8);
    assert_eq!(report.config.warmup, Duration::from_millis(300));
}

/// JSON payloads round-trip byte for byte through the servers' parse-and-re-serialize `/json`
/// endpoint, at several sizes.
#[tokio::test]
async fn json_payloads_through_json_endpoints() {
    for imp in [Impl::Hyper, Impl::Axum] {
        let srv = Fixture::start(imp).await.unwrap();
        for size in [34usize, 64, 4096] {
            let mut c = config(format!("http://{}/json", srv.addr()), 2, 5, 20, 1);
            c.payload = echo_client::Payload::Json;
            c.size = size;
            let report = run(c, RunOptions::default()).await.unwrap();
            assert_eq!(
                report.summary.round_trips, 20,
                "{imp} size {size}: {:?}",
                report.errors
            );
        }
    }
}

/// `--connect-rate 100`: 20 connections (4 clients, each replaced after one round trip) are
/// paced at 100/s in total: one thread spaces its 20 by 10 ms (the last 190 ms in), two
/// threads their 10 each by 20 ms (the last 180 ms in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rate_spaces_connections() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    for threads in [1, 2] {
        let c = Config {
            connect_rate: Some(100.0),
            ..config(srv.url(), 4, 1, 20, threads)
        };
        let started = std::time::Instant::now();
        let report = run(c, RunOptions::default()).await.unwrap();
        let took = started.elapsed();
        assert_eq!(report.summary.connections_opened, 20, "t={threads}");
        assert_eq!(report.summary.round_trips, 20, "t={threads}");
        assert!(
            took >= Duration::from_millis(180),
            "t={threads}: 20 connects at 100/s took only {took:?}"
        );
    }
}

/// A warmup lasts until every connection has opened: 10 connections paced at 40/s need about
/// 225 ms, so with a 50 ms warmup every connect still falls before the window (none opened
/// in it), and the window is the full duration.
#[tokio::test]
async fn warmup_waits_for_every_connection() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    let c = Config {
        connections: 10,
        roundtrips: 0,
        connect_rate: Some(40.0),
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(300),
        threads: 2,
        ..Config::new(srv.url())
    };
    let report = run(c, RunOptions::default()).await.unwrap();
    assert_eq!(
        report.summary.connections_opened, 0,
        "a connect fell inside the window"
    );
    assert!(report.summary.round_trips > 0);
    assert!(
        (0.3..0.35).contains(&report.measured_s),
        "window {} s",
        report.measured_s
    );
}

/// `--pipeline 4` on every server: c=3 with r=10 and n=100 (batches cut at each connection's
/// 10th, so 4+4+2) and r=0 with n=101 (batches of 4 and a last short one) complete exactly
/// the total over exactly the connections, every echo verified and timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_counts_are_exact() {
    for imp in Impl::ALL {
        let srv = Fixture::start(imp).await.unwrap();
        for (roundtrips, total, connections) in [(10, 100, 10), (0, 101, 3)] {
            let c = Config {
                pipeline: 4,
                ..config(srv.url(), 3, roundtrips, total, 2)
            };
            let report = run(c, RunOptions::default()).await.unwrap();
            let s = &report.summary;
            assert_eq!(s.errors, 0, "{imp}: {:?}", report.errors);
            assert_eq!(s.round_trips, total, "{imp} r={roundtrips}");
            assert_eq!(s.connections_opened, connections, "{imp} r={roundtrips}");
            assert_eq!(report.latency.round_trip.count, total, "{imp}");
            assert_eq!(s.in_flight_at_deadline, 0, "{imp}");
        }
    }
}

/// A WebSocket server corrupting every 5th message it echoes (counted over all connections),
/// pipelined 4 deep, n=8 on one client. The first batch is good; the second's first echo is
/// corrupt: one mismatch, and the three messages after it go back to the total and are done on
/// a new connection (whether the server echoed them before the first connection went, which
/// moves its count, is a race, so what follows is counted, not predicted): completed and
/// mismatches add up to exactly 8, and nothing else fails.
#[tokio::test]
async fn pipelined_mismatch_ends_the_connection() {
    let srv = Fixture::builder(Impl::Tungstenite)
        .corrupt_every(5)
        .start()
        .await
        .unwrap();
    let c = Config {
        pipeline: 4,
        ..config(srv.url(), 1, 0, 8, 1)
    };
    let report = run(c, RunOptions::default()).await.unwrap();
    let mismatches = report
        .errors
        .count(echo_client::error::ErrorKind::EchoMismatch);
    let s = &report.summary;
    assert_eq!(s.round_trips + mismatches, 8, "{:?}", report.errors);
    assert_eq!(s.errors, mismatches, "{:?}", report.errors);
    assert!(mismatches >= 1);
    assert!(
        s.connections_opened >= 2,
        "the batch's failure replaced the connection"
    );
}
