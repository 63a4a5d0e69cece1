//! `--slo` and `--slo-abort` against servers with a known latency: each limit is judged with
//! the value measured beside it, a breach makes exit code 5, and a breach that lasts stops
//! the run early with its report still complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use echo_client::Config;
use echo_client::run::{RunOptions, run};
use echo_servers::{Fixture, Impl};
use echobench_core::slo::Slo;

fn config(url: String, slo: &str) -> Config {
    Config {
        connections: 2,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(200),
        threads: 1,
        slo: Some(Slo::parse(slo).unwrap()),
        ..Config::new(url)
    }
}

/// A server that delays every echo by 5 ms: `p99<1ms` is breached, `p50<1s` and
/// `errors<1%` hold, and each check carries the value it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_judged_over_the_window() {
    let srv = Fixture::builder(Impl::Tcp)
        .delay(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    let report = run(
        config(srv.url(), "p99<1ms,p50<1s,errors<1%"),
        RunOptions::default(),
    )
    .await
    .unwrap();
    let slo = report.slo.unwrap();
    let met: Vec<bool> = slo.checks.iter().map(|c| c.met).collect();
    assert_eq!(met, [false, true, true], "{:?}", slo.checks);
    assert!(!slo.met && !slo.aborted);
    let p99 = slo.checks[0].measured.unwrap();
    assert!(
        p99 >= 5e6,
        "the 5 ms delay is in the measured p99: {p99} ns"
    );
    assert_eq!(slo.checks[2].measured, Some(0.0));
}

/// `--slo-abort 1s` on a run of 30 s whose p99 is breached from the first second: it stops
/// after a couple of seconds, says so, and still reports what it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_breach_stops_the_run() {
    let srv = Fixture::builder(Impl::Tcp)
        .delay(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    let c = Config {
        duration: Duration::from_secs(30),
        slo_abort: Some(Duration::from_secs(1)),
        ..config(srv.url(), "p99<1ms")
    };
    let report = run(c, RunOptions::default()).await.unwrap();
    let slo = report.slo.unwrap();
    assert!(slo.aborted && !slo.met);
    assert!(!report.interrupted, "an SLO stop is not an interrupt");
    assert!(
        report.measured_s < 10.0,
        "stopped early, after {} s",
        report.measured_s
    );
    assert!(report.summary.round_trips > 0);
}

/// The binary: exit 5 on a breach with the SLO lines in the summary, 0 when every limit
/// holds, 2 with a pointer at the bad part of a malformed expression.
#[test]
fn exit_codes_and_summary() {
    let srv = Fixture::builder(Impl::Tcp)
        .delay(Duration::from_millis(2))
        .start_blocking()
        .unwrap();
    let client = |slo: &str| {
        Command::new(env!("CARGO_BIN_EXE_echo-client"))
            .arg(srv.url())
            .args([
                "-c", "1", "-d", "1s", "--warmup", "100ms", "-t", "1", "--slo", slo,
            ])
            .output()
            .unwrap()
    };
    let breached = client("p99<1ms,errors<1%");
    assert_eq!(breached.status.code(), Some(5));
    let summary = String::from_utf8_lossy(&breached.stdout);
    assert!(summary.contains("SLO          breached"), "{summary}");
    assert!(
        summary.contains("p99<1ms") && summary.contains("BREACHED"),
        "{summary}"
    );

    let met = client("p99<2s");
    assert_eq!(met.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&met.stdout).contains("SLO          met"));

    let bad = client("p99<1ms,p42x<3");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("`p42x` is not a limit") && stderr.contains("^^^^"),
        "{stderr}"
    );
}
