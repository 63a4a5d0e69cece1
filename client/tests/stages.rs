//! `--stages`: the rate stages offer exactly their integral second by second and each stage
//! gets its own record; connection stages open and close exactly the connections the levels
//! say; each stage is judged against the SLO on its own.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use echo_client::Config;
use echo_client::run::{RunOptions, run};
use echo_servers::{Fixture, Impl};
use echobench_core::slo::Slo;
use echobench_core::stages::Stages;

fn staged(url: String, stages: &str) -> Config {
    let stages: Stages = stages.parse().unwrap();
    Config {
        duration: stages.duration(),
        stages: Some(stages),
        warmup: Duration::ZERO,
        threads: 2,
        ..Config::new(url)
    }
}

/// Open loop from 100/s: a step to 200/s for 1 s, then to 400/s for 1 s. The timeline offers
/// exactly 200 then 400, the stages say so, and each stage completes its share (all but the
/// sends skipped while the connections opened; a round trip counts where its echo landed, so
/// one sent at the end of a stage may count in the next).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_stages() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    let config = Config {
        connections: 4,
        rate: Some(100.0),
        ..staged(srv.url(), "1s:=200,1s:=400")
    };
    let report = run(config, RunOptions::default()).await.unwrap();
    let offered: Vec<Option<f64>> = report.timeline.iter().map(|s| s.offered).collect();
    assert_eq!(offered, [Some(200.0), Some(400.0)]);
    let stages: Vec<(u32, f64, f64, Option<f64>)> = report
        .stages
        .iter()
        .map(|s| (s.stage, s.from, s.to, s.offered_per_s))
        .collect();
    assert_eq!(
        stages,
        [
            (0, 200.0, 200.0, Some(200.0)),
            (1, 400.0, 400.0, Some(400.0))
        ]
    );
    let done: Vec<u64> = report.stages.iter().map(|s| s.record.round_trips).collect();
    assert!((194..=200).contains(&done[0]), "{done:?}");
    assert!((395..=404).contains(&done[1]), "{done:?}");
    assert!(done.iter().sum::<u64>() <= 600, "{done:?}");
    assert_eq!(done.iter().sum::<u64>(), report.summary.round_trips);
    assert_eq!(report.summary.errors, 0);
    // The stage records merge back into the report's measurement.
    let m = report.measurement().unwrap();
    assert_eq!(m.stages.len(), 2);
    assert_eq!(m.stages[1].round_trip.len(), done[1]);
}

/// Closed loop from 2 connections (opened in the warmup): up to 6 at once, then down to 3.
/// Exactly 4 connections open in the window and 3 close (the rest are dropped at the
/// deadline, not closed), and each stage is judged against the SLO on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_stages() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    let config = Config {
        connections: 2,
        slo: Some(Slo::parse("errors<1%").unwrap()),
        warmup: Duration::from_millis(50),
        ..staged(srv.url(), "300ms:=6,300ms:=3")
    };
    let report = run(config, RunOptions::default()).await.unwrap();
    assert_eq!(report.summary.connections_opened, 4);
    assert_eq!(report.summary.connections_closed, 3);
    let levels: Vec<(f64, f64)> = report.stages.iter().map(|s| (s.from, s.to)).collect();
    assert_eq!(levels, [(6.0, 6.0), (3.0, 3.0)]);
    for stage in &report.stages {
        assert!(stage.record.round_trips > 0, "stage {}", stage.stage);
        let checks = stage.slo.as_ref().expect("each stage is judged");
        assert!(
            checks.iter().all(|c| c.met),
            "stage {}: {checks:?}",
            stage.stage
        );
        assert_eq!(stage.offered_per_s, None, "closed loop offers no rate");
    }
}

/// Stages that disagree with the window, or with -n, are refused naming the flags.
#[test]
fn stages_are_checked_against_the_window() {
    let base = staged("tcp://127.0.0.1:1".into(), "1s:=5,1s:=10");
    let cases: [(Config, &str); 3] = [
        (
            Config {
                duration: Duration::from_secs(10),
                ..base.clone()
            },
            "last 2s, but -d/--duration says 10s",
        ),
        (
            Config {
                total: Some(10),
                ..base
            },
            "--stages and -n/--total cannot be combined",
        ),
        (
            staged("tcp://127.0.0.1:1".into(), "1s:2.5"),
            "must be whole (a stage reaches 2.5)",
        ),
    ];
    for (config, message) in cases {
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
    }
}
