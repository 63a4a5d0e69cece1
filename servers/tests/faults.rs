//! Every fault behaves as documented on every implementation: delay, close-after,
//! corrupt-every, periodic stalls, a CPU cost per echo and a rate limit.

mod common;

use std::time::Duration;

use common::{Client, Echo, payload};
use echo_servers::{Fixture, Impl, Protocol};
use tokio::time::Instant;

/// Every echo takes at least the configured delay.
#[tokio::test]
async fn delay_holds_every_echo() {
    let delay = Duration::from_millis(80);
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).delay(delay).start().await.unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        for round in 0..2u8 {
            let body = payload(32, round);
            let started = Instant::now();
            assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
            assert!(
                started.elapsed() >= delay,
                "{imp}: echo faster than the delay"
            );
        }
    }
}

/// After N echoes the server closes: WebSocket with 1000, HTTP via `Connection: close`, TCP
/// by closing the socket.
#[tokio::test]
async fn close_after_n_echoes() {
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).close_after(3).start().await.unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        for round in 0..3u8 {
            let body = payload(16, round);
            assert_eq!(
                client.echo(&body).await,
                Echo::Bytes(body),
                "{imp} echo {round}"
            );
        }
        match imp.protocol() {
            // The third response carried `Connection: close` and `echo` checked the close.
            Protocol::Http => {}
            Protocol::WebSocket => {
                assert_eq!(
                    client.echo(b"late").await,
                    Echo::Closed(Some(1000)),
                    "{imp}"
                );
                assert!(client.server_closed().await, "{imp}");
            }
            Protocol::Tcp => assert!(client.server_closed().await, "{imp}"),
        }
        // A new connection gets its own count.
        let mut fresh = Client::connect(imp, srv.addr()).await;
        assert_eq!(
            fresh.echo(b"again").await,
            Echo::Bytes(b"again".to_vec()),
            "{imp}"
        );
    }
}

/// Exactly every Nth echo differs from what was sent, by exactly one byte.
#[tokio::test]
async fn corrupt_every_nth_echo() {
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp)
            .corrupt_every(3)
            .start()
            .await
            .unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        let mut corrupt = Vec::new();
        for round in 1..=9u8 {
            let body = payload(40, round);
            let Echo::Bytes(echo) = client.echo(&body).await else {
                panic!("{imp}: connection closed");
            };
            assert_eq!(echo.len(), body.len(), "{imp}");
            let changed = echo.iter().zip(&body).filter(|(a, b)| a != b).count();
            if changed > 0 {
                assert_eq!(changed, 1, "{imp}: more than one byte changed");
                corrupt.push(round);
            }
        }
        assert_eq!(corrupt, [3, 6, 9], "{imp}");
    }
}

/// During a stall window echoes are held until it ends; outside it they are prompt.
#[tokio::test]
async fn stall_holds_echoes_in_the_window() {
    let every = Duration::from_millis(400);
    let stall = Duration::from_millis(200);
    let mut runs = tokio::task::JoinSet::new();
    for imp in Impl::ALL {
        runs.spawn(async move {
            let srv = Fixture::builder(imp)
                .stall(every, stall)
                .start()
                .await
                .unwrap();
            let mut client = Client::connect(imp, srv.addr()).await;
            let started = Instant::now();
            let mut slowest = Duration::ZERO;
            let mut echoes = 0u32;
            // Back-to-back echoes across two stall windows (at 400 and 800 ms), bounded.
            while started.elapsed() < Duration::from_millis(1100) && echoes < 200_000 {
                let body = payload(8, 1);
                let sent = Instant::now();
                assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
                slowest = slowest.max(sent.elapsed());
                echoes += 1;
            }
            (imp, slowest, echoes)
        });
    }
    while let Some(result) = runs.join_next().await {
        let (imp, slowest, echoes) = result.unwrap();
        // An echo sent just after a window opens waits almost all of it.
        assert!(
            slowest >= Duration::from_millis(100),
            "{imp}: slowest echo {slowest:?}"
        );
        assert!(echoes > 2, "{imp}: only {echoes} echoes in 1.1 s");
    }
}

/// A rate limit of 100 echoes per second, on every implementation: 11 echoes one after the
/// other take at least the 100 ms their ten slots apart span (the first leaves at once, each
/// may leave up to a millisecond early), and every echo is still exact.
#[tokio::test]
async fn max_rate_spaces_the_echoes() {
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).max_rate(100).start().await.unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        let started = Instant::now();
        for round in 0..11u8 {
            let body = payload(32, round);
            assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
        }
        assert!(
            started.elapsed() >= Duration::from_millis(100 - 10),
            "{imp}: 11 echoes in {:?} under a limit of 100/s",
            started.elapsed()
        );
    }
}

/// A CPU cost per echo is spent before the echo goes: each takes at least that long.
#[tokio::test]
async fn echo_cost_is_spent_per_echo() {
    let cost = Duration::from_millis(20);
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).echo_cost(cost).start().await.unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        let body = payload(32, 1);
        let started = Instant::now();
        assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
        assert!(
            started.elapsed() >= cost,
            "{imp}: echo faster than its cost"
        );
    }
}
