//! `--workload broadcast` against the reference relays (`/broadcast` on both WebSocket servers,
//! `tcp --broadcast`): exact counts after the drain, open and closed loop; a relay that drops
//! slow subscribers, with every expected delivery accounted for; and what is not a relay or
//! not a broadcast setting refused with a message naming it.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use echo_client::Config;
use echo_client::run::{RunError, RunOptions, run};
use echo_servers::{Fixture, Impl, Policy};
use echobench_core::broadcast::BroadcastConfig;
use echobench_core::slo::Slo;

fn config(url: String, connections: u32, publishers: u32, rate: Option<f64>) -> Config {
    Config {
        connections,
        rate,
        size: 64,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
        threads: 1,
        broadcast: Some(BroadcastConfig { publishers }),
        ..Config::new(url)
    }
}

async fn relay(implementation: Impl) -> Fixture {
    Fixture::builder(implementation)
        .relay()
        .start()
        .await
        .unwrap()
}

/// Every message of the window at every subscriber, once, in order; the delivery latency has
/// one sample per delivery and the slowest-subscriber latency one per message.
#[tokio::test]
async fn exact_counts_open_and_closed_loop() {
    for implementation in [Impl::Tungstenite, Impl::AxumWs, Impl::Tcp] {
        let srv = relay(implementation).await;
        for (rate, pipeline) in [(Some(500.0), 1), (None, 4)] {
            let what = format!("{implementation} rate {rate:?} pipeline {pipeline}");
            let config = Config {
                pipeline,
                ..config(srv.broadcast_url().unwrap(), 6, 2, rate)
            };
            let report = run(config, RunOptions::default()).await.unwrap();
            let b = report.broadcast.clone().expect("a broadcast section");
            assert!(b.counts.published > 0, "{what}");
            assert_eq!(
                b.counts.deliveries_expected,
                b.counts.published * 6,
                "{what}"
            );
            assert_eq!(b.counts.delivered, b.counts.deliveries_expected, "{what}");
            assert_eq!(
                (
                    b.counts.missing,
                    b.counts.duplicated,
                    b.counts.out_of_order,
                    b.counts.malformed
                ),
                (0, 0, 0, 0),
                "{what}"
            );
            assert_eq!(b.counts.subscribers_dropped, 0, "{what}");
            assert!(b.drained, "{what}");
            assert_eq!(b.delivery.count, b.counts.delivered, "{what}");
            assert_eq!(b.slowest.count, b.counts.published, "{what}");
            // The report's round trips are the deliveries in the window, its CPU's span.
            assert_eq!(report.summary.round_trips, b.arrived_in_window, "{what}");
            let corrected = report.latency.corrected.as_ref();
            match rate {
                // From each publish's due time: never before its send, so at least as long.
                Some(_) => {
                    let corrected = corrected.expect("open loop has corrected latency");
                    assert_eq!(corrected.count, b.counts.delivered, "{what}");
                    assert!(corrected.min >= b.delivery.min, "{what}");
                    assert!(corrected.p50 >= b.delivery.p50, "{what}");
                    assert!(corrected.max >= b.delivery.max, "{what}");
                }
                None => assert!(corrected.is_none(), "{what}"),
            }
            assert_eq!(report.summary.errors, 0, "{what}");
            if rate.is_some() {
                // Never more than the schedule had due by the window's end (the warmup's
                // included: a client kept from its schedule catches up in the window).
                let due = 500.0 * (0.2 + report.measured_s) + 2.0;
                assert!(
                    b.counts.published as f64 <= due,
                    "{what}: {} > {due}",
                    b.counts.published
                );
            }
        }
        srv.shutdown().await.unwrap();
    }
}

/// A relay with a tiny queue that disconnects slow subscribers: some are dropped, and every
/// expected delivery is either delivered or missing, none twice.
#[tokio::test]
async fn dropped_subscribers_are_accounted_for() {
    let srv = Fixture::builder(Impl::Tungstenite)
        .broadcast_policy(Policy::Disconnect)
        .broadcast_queue(2)
        .start()
        .await
        .unwrap();
    let config = Config {
        pipeline: 16,
        ..config(srv.broadcast_url().unwrap(), 30, 6, None)
    };
    let report = run(config, RunOptions::default()).await.unwrap();
    let b = report.broadcast.unwrap();
    assert!(b.counts.subscribers_dropped > 0, "{b:?}");
    assert_eq!(
        b.counts.delivered + b.counts.missing,
        b.counts.deliveries_expected,
        "{b:?}"
    );
    assert_eq!(b.counts.duplicated, 0);
    assert!(b.counts.missing > 0, "{b:?}");
    assert_eq!(
        report.errors.kinds.values().map(|e| e.count).sum::<u64>(),
        b.counts.subscribers_dropped
    );
    srv.shutdown().await.unwrap();
}

/// Settings that do not fit a broadcast, and a URL that is not a relay, fail before any load
/// with a message naming the flag or the URL.
#[tokio::test]
async fn what_is_not_a_broadcast() {
    let relay = relay(Impl::Tungstenite).await;
    let url = relay.broadcast_url().unwrap();
    let cases: [(Config, &str); 5] = [
        (
            Config {
                size: 32,
                ..config(url.clone(), 4, 1, None)
            },
            "--workload broadcast needs --size 41 or more",
        ),
        (
            config(url.clone(), 4, 5, None),
            "--publishers 5 must be between 1 and -c 4",
        ),
        (
            Config {
                roundtrips: 10,
                ..config(url.clone(), 4, 1, None)
            },
            "do not apply to --workload broadcast",
        ),
        (
            Config {
                ws_mode: echo_client::WsMode::Text,
                ..config(url.clone(), 4, 1, None)
            },
            "drop --ws-mode text",
        ),
        (
            Config {
                slo: Some(Slo::parse("p95<=500ms").unwrap()),
                slo_abort: Some(Duration::from_secs(1)),
                ..config(url.clone(), 4, 1, None)
            },
            "--slo-abort does not apply to --workload broadcast",
        ),
    ];
    for (config, needle) in cases {
        let err = run(config, RunOptions::default()).await.unwrap_err();
        assert!(matches!(err, RunError::Config(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // An echo server echoes the sync message to its sender only: nobody else ever gets one.
    let echo = Fixture::builder(Impl::Tungstenite).start().await.unwrap();
    let config = Config {
        warmup_timeout: Duration::from_millis(300),
        ..config(echo.url(), 3, 1, None)
    };
    let err = run(config, RunOptions::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("only 1 of 3 subscribers received the relay's messages"),
        "{err}"
    );
    assert!(err.to_string().ends_with("a broadcast relay?"), "{err}");
    echo.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}

/// A relay that lies about a message's length: refused before a byte of it is read (the
/// client never allocates what was announced), and a run whose subscribers all ended that way
/// fails saying so.
#[tokio::test]
async fn a_relay_that_lies_about_lengths() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let liar = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = socket.write_all(&u32::MAX.to_be_bytes()).await;
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let config = Config {
        warmup_timeout: Duration::from_secs(5),
        ..config(format!("tcp://{addr}"), 3, 1, None)
    };
    let err = run(config, RunOptions::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ended before the load began"), "{text}");
    assert!(
        text.contains("the relay framed a 4294967295-byte message where every message is 64 bytes"),
        "{text}"
    );
    liar.abort();
}

/// `--slo` is judged on deliveries. A relay that lets at most 300 deliveries/s leave, offered
/// 4 subscribers x 150 messages/s = 600/s, sustains half of it whatever the host does: `rate`
/// is breached, while every delivery still arrives by the end of the drain, so `errors` holds.
/// Without the limit the same load holds both.
#[tokio::test]
async fn slo_on_deliveries() {
    let slo = Slo::parse("errors<=0%,rate>=80%").unwrap();
    for (max_rate, met) in [(300, false), (0, true)] {
        let srv = Fixture::builder(Impl::Tcp)
            .relay()
            .max_rate(max_rate)
            .start()
            .await
            .unwrap();
        let config = Config {
            slo: Some(slo.clone()),
            timeout: Duration::from_secs(10),
            ..config(srv.broadcast_url().unwrap(), 4, 1, Some(150.0))
        };
        let report = run(config, RunOptions::default()).await.unwrap();
        let b = report.broadcast.clone().unwrap();
        let outcome = report.slo.expect("judged");
        assert_eq!(outcome.checks.len(), 2);
        assert!(outcome.checks[0].met, "max rate {max_rate}: {outcome:?}");
        assert_eq!(
            outcome.checks[1].met, met,
            "max rate {max_rate}: {outcome:?} {b:?}"
        );
        assert_eq!(outcome.met, met);
        assert_eq!(b.counts.delivered, b.counts.deliveries_expected, "{b:?}");
        assert!(b.arrived_in_window <= b.counts.delivered + 4 * 60, "{b:?}");
        if max_rate > 0 {
            // At most 300/s over the window, plus the timer's early allowance.
            assert!(b.deliveries_per_s <= 300.0 * 1.05, "{b:?}");
        }
        srv.shutdown().await.unwrap();
    }
}
