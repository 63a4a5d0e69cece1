//! Graceful shutdown of the fixtures: WebSocket peers get close 1001, an HTTP request in flight
//! is still answered, TCP connections are closed, and afterwards nothing listens.

mod common;

use common::{Client, Echo, RawHttp, payload, ws_next};
use echo_servers::{Fixture, Impl};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// A connected WebSocket client receives close 1001 when the server shuts down.
#[tokio::test]
async fn websocket_peers_get_going_away() {
    for imp in [Impl::Tungstenite, Impl::AxumWs] {
        let srv = Fixture::start(imp).await.unwrap();
        let addr = srv.addr();
        let mut ws = common::ws_connect(&srv.url()).await;
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(ws_next(&mut ws).await, Some(Message::text("before")));

        let stopping = tokio::spawn(srv.shutdown());
        match ws_next(&mut ws).await {
            Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001, "{imp}"),
            other => panic!("{imp}: expected close 1001, got {other:?}"),
        }
        // Reading on sends our close reply, after which the server closes the connection.
        assert_eq!(ws_next(&mut ws).await, None, "{imp}");
        stopping.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{imp}: still listening"
        );
    }
}

/// A request whose body is still being read when shutdown starts is answered in full.
#[tokio::test]
async fn http_request_in_flight_is_answered() {
    for imp in [Impl::Hyper, Impl::Axum] {
        let srv = Fixture::start(imp).await.unwrap();
        let addr = srv.addr();
        let mut conn = RawHttp::connect(addr).await;
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
        // The 100 proves the handler is running: the request is in flight.
        assert_eq!(conn.response().await.status, 100, "{imp}");

        let stopping = tokio::spawn(srv.shutdown());
        // Let the shutdown start (it cancels before its first await) before the body goes out.
        tokio::task::yield_now().await;
        conn.send(b"hello").await;
        let response = conn.response().await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"hello"[..]),
            "{imp}"
        );
        assert!(
            conn.closed().await,
            "{imp}: the connection must close after the answer"
        );
        stopping.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{imp}: still listening"
        );
    }
}

/// Open TCP and idle HTTP keep-alive connections are closed by shutdown.
#[tokio::test]
async fn idle_connections_are_closed() {
    for imp in [Impl::Tcp, Impl::Hyper, Impl::Axum] {
        let srv = Fixture::start(imp).await.unwrap();
        let mut client = Client::connect(imp, srv.addr()).await;
        let body = payload(10, 0);
        assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
        srv.shutdown().await.unwrap();
        assert!(client.server_closed().await, "{imp}");
    }
}

/// The blocking fixture serves from its own thread and stops when dropped.
#[test]
fn blocking_fixture_stops_on_drop() {
    use std::io::{Read, Write};
    for imp in [Impl::Tcp, Impl::Hyper] {
        let srv = Fixture::builder(imp).start_blocking().unwrap();
        let addr = srv.addr();
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(common::STEP)).unwrap();
        if imp == Impl::Tcp {
            conn.write_all(b"sync").unwrap();
            let mut echo = [0u8; 4];
            conn.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"sync");
        } else {
            conn.write_all(&common::post("/echo", None, b"sync"))
                .unwrap();
            let mut response = Vec::new();
            let mut chunk = [0u8; 1024];
            while !response.ends_with(b"sync") {
                let n = conn.read(&mut chunk).unwrap();
                assert!(n > 0, "closed before the echo");
                response.extend_from_slice(&chunk[..n]);
            }
            assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
        drop(srv);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{imp}: still listening after drop"
        );
    }
}

/// Invalid options are refused when the fixture starts, naming the option.
#[tokio::test]
async fn invalid_options_are_refused() {
    let err = Fixture::builder(Impl::Tcp)
        .stall(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(100),
        )
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--stall-for"), "{err}");
}
