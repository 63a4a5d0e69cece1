//! Each error kind, provoked by a real fault in a reference server, is counted under its own
//! kind, exactly where the fault makes the count exact.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use echo_client::error::ErrorKind;
use echo_client::run::{RunError, RunOptions, run};
use echo_client::{Config, Report};
use echo_servers::{Fixture, Impl};

fn deterministic(url: String, total: u64) -> Config {
    Config {
        connections: 1,
        roundtrips: 0,
        total: Some(total),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        threads: 1,
        ..Config::new(url)
    }
}

async fn go(config: Config) -> Report {
    run(config, RunOptions::default()).await.unwrap()
}

/// A server closing after 5 echoes: WebSocket and TCP lose the 6th round trip of every
/// connection as closed_by_peer; HTTP announces the close, so nothing is lost.
#[tokio::test]
async fn close_after_is_closed_by_peer() {
    // 20 attempts = 3 connections of (5 echoed + 1 refused) + 2 echoed on a 4th.
    for imp in [Impl::Tungstenite, Impl::AxumWs, Impl::Tcp] {
        let srv = Fixture::builder(imp).close_after(5).start().await.unwrap();
        let report = go(deterministic(srv.url(), 20)).await;
        assert_eq!(report.summary.round_trips, 17, "{imp}: {:?}", report.errors);
        assert_eq!(report.errors.count(ErrorKind::ClosedByPeer), 3, "{imp}");
        assert_eq!(report.summary.errors, 3, "{imp}");
        assert_eq!(report.summary.connections_opened, 4, "{imp}");
    }
    for imp in [Impl::Hyper, Impl::Axum] {
        let srv = Fixture::builder(imp).close_after(5).start().await.unwrap();
        let report = go(deterministic(srv.url(), 20)).await;
        assert_eq!(report.summary.round_trips, 20, "{imp}: {:?}", report.errors);
        assert_eq!(report.summary.errors, 0, "{imp}");
        assert_eq!(report.summary.connections_opened, 4, "{imp}");
    }
}

/// A server corrupting every 4th echo: exactly a quarter are echo_mismatch, on every protocol,
/// and the sample message says where the echo differed. HTTP and WebSocket frame their
/// messages, so the connection carries on; a TCP stream has no framing to fall back on, so
/// each wrong echo ends its connection and a new one takes over (10 in all: the last wrong echo
/// is the run's last round trip).
#[tokio::test]
async fn corrupt_every_is_echo_mismatch() {
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp)
            .corrupt_every(4)
            .start()
            .await
            .unwrap();
        let report = go(deterministic(srv.url(), 40)).await;
        assert_eq!(
            report.errors.count(ErrorKind::EchoMismatch),
            10,
            "{imp}: {:?}",
            report.errors
        );
        assert_eq!(report.summary.round_trips, 30, "{imp}");
        let connections = if imp == Impl::Tcp { 10 } else { 1 };
        assert_eq!(report.summary.connections_opened, connections, "{imp}");
        let sample = &report.errors.kinds[&ErrorKind::EchoMismatch].samples[0];
        assert!(
            sample.contains("echo differs from the message at byte 31"),
            "{imp}: {sample}"
        );
    }
}

/// Echoes slower than --timeout are round_trip_timeout; when none completes, all_failed.
#[tokio::test]
async fn slow_echo_is_round_trip_timeout() {
    for imp in [Impl::Axum, Impl::Tungstenite, Impl::Tcp] {
        let srv = Fixture::builder(imp)
            .delay(Duration::from_millis(400))
            .start()
            .await
            .unwrap();
        let mut config = deterministic(srv.url(), 3);
        config.timeout = Duration::from_millis(100);
        config.connect_timeout = Duration::from_secs(5);
        let report = go(config).await;
        assert_eq!(
            report.errors.count(ErrorKind::RoundTripTimeout),
            3,
            "{imp}: {:?}",
            report.errors
        );
        assert_eq!(report.summary.round_trips, 0, "{imp}");
        assert!(report.flags.all_failed, "{imp}");
        // A timed-out connection cannot be trusted: each attempt used a new one.
        assert_eq!(report.summary.connections_opened, 3, "{imp}");
    }
}

/// Non-200 answers are http_status, counted per status; the connection is kept.
#[tokio::test]
async fn http_status_is_its_own_kind() {
    let srv = Fixture::start(Impl::Hyper).await.unwrap();
    for (path, status) in [("/nope", 404u16), ("/", 405)] {
        let report = go(deterministic(format!("http://{}{path}", srv.addr()), 7)).await;
        let entry = &report.errors.kinds[&ErrorKind::HttpStatus];
        assert_eq!(entry.count, 7);
        assert_eq!(entry.by_status.get(&status), Some(&7), "{path}");
        assert_eq!(entry.samples[0], format!("HTTP {status} instead of 200"));
        assert_eq!(report.summary.connections_opened, 1);
        assert!(report.flags.all_failed);
    }
}

/// Nothing listening: the run refuses to start, naming the URL and the cause.
#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for url in [
        format!("http://127.0.0.1:{port}/echo"),
        format!("ws://127.0.0.1:{port}/ws"),
        format!("tcp://127.0.0.1:{port}"),
    ] {
        match run(deterministic(url.clone(), 1), RunOptions::default()).await {
            Err(RunError::Unreachable {
                url: u,
                reason,
                hint,
            }) => {
                assert_eq!(u, url);
                assert!(reason.contains("connect refused"), "{reason}");
                assert!(hint.contains("Is the server running"), "{hint}");
            }
            other => panic!("{url}: expected Unreachable, got {other:?}"),
        }
    }
}

/// A refused WebSocket upgrade is reported with its HTTP status before any load.
#[tokio::test]
async fn refused_upgrade_is_reported() {
    let srv = Fixture::start(Impl::Tungstenite).await.unwrap();
    let url = format!("ws://{}/elsewhere", srv.addr());
    let err = run(deterministic(url, 1), RunOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("handshake refused with HTTP 404"), "{text}");
    assert!(
        text.contains("did not complete the WebSocket handshake") && !text.contains("running"),
        "{text}"
    );
}

/// Remote targets are refused unless allowed, with the reason; nothing is sent.
#[tokio::test]
async fn remote_targets_are_refused() {
    let err = run(
        deterministic("http://192.0.2.1:80/echo".into(), 1),
        RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::Target(_)), "{err:?}");
    assert!(err.to_string().contains("--allow-remote"), "{err}");
}

/// A server that stalls longer than the timeout: the stalled round trips are
/// round_trip_timeout, the run still ends on time, and echoes outside the stalls complete.
#[tokio::test]
async fn stalled_server_is_round_trip_timeout() {
    let srv = Fixture::builder(Impl::Tcp)
        .stall(Duration::from_millis(500), Duration::from_millis(400))
        .start()
        .await
        .unwrap();
    let config = Config {
        connections: 2,
        duration: Duration::from_millis(1800),
        warmup: Duration::ZERO,
        timeout: Duration::from_millis(100),
        threads: 1,
        ..Config::new(srv.url())
    };
    let started = std::time::Instant::now();
    let report = go(config).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the run overran its deadline"
    );
    assert!(
        report.errors.count(ErrorKind::RoundTripTimeout) >= 2,
        "{:?}",
        report.errors
    );
    assert!(report.summary.round_trips > 0);
    assert!(!report.flags.all_failed);
}

/// An HTTP server answering 500 to everything: http_status errors counted under 500.
#[tokio::test]
async fn http_500_is_counted_with_its_status() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A minimal broken server: reads each request head and answers 500, keeping the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                    // Requests are a head plus a 32-byte body.
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        if buffer.len() < end + 4 + 32 {
                            break;
                        }
                        buffer.drain(..end + 4 + 32);
                        let answer =
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let report = go(deterministic(format!("http://{addr}/echo"), 12)).await;
    let entry = &report.errors.kinds[&ErrorKind::HttpStatus];
    assert_eq!(entry.count, 12);
    assert_eq!(entry.by_status.get(&500), Some(&12));
    assert_eq!(
        report.summary.connections_opened, 1,
        "a 500 keeps the connection"
    );
    assert!(report.flags.all_failed);
}

/// A server that takes only two load connections (it drops every later one mid-handshake):
/// the warmup waits for the third until --warmup-timeout, then the run fails saying how many
/// opened and what the others ran into (exit 3 on the command line).
#[tokio::test]
async fn warmup_timeout_names_the_connections_missing() {
    let srv = Fixture::start(Impl::Tungstenite).await.unwrap();
    let upstream = srv.addr();
    let gate = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gate.local_addr().unwrap();
    tokio::spawn(async move {
        // The preflight check, then two load connections, go through to the real server.
        let mut admitted = 0;
        while let Ok((mut stream, _)) = gate.accept().await {
            if admitted == 3 {
                drop(stream);
                continue;
            }
            admitted += 1;
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut server).await;
            });
        }
    });
    let config = Config {
        connections: 3,
        roundtrips: 0,
        warmup: Duration::from_millis(100),
        warmup_timeout: Duration::from_secs(1),
        duration: Duration::from_secs(1),
        threads: 1,
        ..Config::new(format!("ws://{addr}/ws"))
    };
    let err = run(config, RunOptions::default()).await.unwrap_err();
    let RunError::Ramp {
        opened,
        wanted,
        ref errors,
        ..
    } = err
    else {
        panic!("expected a ramp failure, got {err}");
    };
    assert_eq!((opened, wanted), (2, 3));
    assert!(errors.count(ErrorKind::HandshakeFailed) > 0, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("only 2 of 3 connections opened within --warmup-timeout 1s (errors meanwhile: handshake_failed "),
        "{message}"
    );
}
