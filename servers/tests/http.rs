//! HTTP behaviour of the `hyper` and `axum` servers over real loopback sockets: every case runs
//! against both, and both must answer byte-for-byte the same.

mod common;

use common::{RawHttp, SIZES, exchange, payload, post};
use echo_servers::http::{DEFAULT_CONTENT_TYPE, INDEX_BODY};
use echo_servers::{Fixture, Impl};

const HTTP: [Impl; 2] = [Impl::Hyper, Impl::Axum];

/// POST /echo returns every payload size byte-for-byte with the request's Content-Type.
#[tokio::test]
async fn echo_returns_body_and_content_type() {
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        for size in SIZES {
            let body = payload(size, 3);
            let response = exchange(srv.addr(), &post("/echo", Some("text/x-test"), &body)).await;
            assert_eq!(response.status, 200, "{imp} size {size}");
            assert_eq!(
                response.header("content-type"),
                Some("text/x-test"),
                "{imp}"
            );
            assert_eq!(response.body.len(), size, "{imp}");
            assert!(response.body == body, "{imp} size {size}: body differs");
        }
        let response = exchange(srv.addr(), &post("/echo", None, b"x")).await;
        assert_eq!(
            response.header("content-type"),
            Some(DEFAULT_CONTENT_TYPE),
            "{imp}"
        );
    }
}

/// A request, the status it must get, its exact body (None: not checked), and one header that
/// must be present.
type RouteCase = (
    Vec<u8>,
    u16,
    Option<&'static [u8]>,
    Option<(&'static str, &'static str)>,
);

/// Routes other than /echo: index, JSON, status codes, 404 and 405 (with Allow).
#[tokio::test]
async fn routes_answer_as_documented() {
    // (request, status, exact body or None to skip, header that must be present)
    let cases: Vec<RouteCase> = vec![
        (
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            200,
            Some(INDEX_BODY.as_bytes()),
            Some(("content-type", "text/plain; charset=utf-8")),
        ),
        (
            post(
                "/json",
                Some("application/json"),
                br#"{"b": [1, 2.5, null], "a": "x"}"#,
            ),
            200,
            Some(br#"{"a":"x","b":[1,2.5,null]}"#),
            Some(("content-type", "application/json")),
        ),
        (
            post("/json", None, b"{oops"),
            400,
            None,
            Some(("content-type", "application/json")),
        ),
        (
            b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            201,
            Some(b""),
            None,
        ),
        (
            b"GET /status/503 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            503,
            Some(b""),
            None,
        ),
        (
            b"GET /status/599 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            599,
            Some(b""),
            None,
        ),
        (
            b"GET /status/99 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            400,
            None,
            None,
        ),
        (
            b"GET /status/600 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            400,
            None,
            None,
        ),
        (
            b"GET /status/abc HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            400,
            None,
            None,
        ),
        (
            b"GET /status/200/x HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            404,
            Some(b""),
            None,
        ),
        (
            b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            404,
            Some(b""),
            None,
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            405,
            Some(b""),
            Some(("allow", "POST")),
        ),
        (
            post("/", None, b""),
            405,
            Some(b""),
            Some(("allow", "GET,HEAD")),
        ),
        (
            b"DELETE /json HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            405,
            Some(b""),
            Some(("allow", "POST")),
        ),
    ];
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        for (request, status, body, header) in &cases {
            let response = exchange(srv.addr(), request).await;
            let shown = String::from_utf8_lossy(request);
            assert_eq!(response.status, *status, "{imp}: {shown}");
            if let Some(body) = body {
                assert_eq!(response.body, *body, "{imp}: {shown}");
            }
            if let Some((name, value)) = header {
                assert_eq!(response.header(name), Some(*value), "{imp}: {shown}");
            }
        }
    }
}

/// Invalid JSON gets a JSON object naming the parse error.
#[tokio::test]
async fn invalid_json_error_body() {
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        let response = exchange(srv.addr(), &post("/json", None, b"[1, 2")).await;
        assert_eq!(response.status, 400);
        let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let message = value["error"].as_str().unwrap();
        assert!(
            message.starts_with("invalid JSON: EOF while parsing"),
            "{imp}: {message}"
        );
    }
}

/// Several requests share one keep-alive connection, including a chunked one.
#[tokio::test]
async fn keep_alive_and_chunked_bodies() {
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        let mut conn = RawHttp::connect(srv.addr()).await;
        for round in 0..3u8 {
            let body = payload(100, round);
            conn.send(&post("/echo", None, &body)).await;
            let response = conn.response().await;
            assert_eq!((response.status, response.body), (200, body), "{imp}");
        }
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
        )
        .await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "{imp}");
        assert_eq!(response.body, b"hello world", "{imp}");
    }
}

/// HTTP/1.0 requests are echoed and the connection is closed afterwards.
#[tokio::test]
async fn http_1_0() {
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        let mut conn = RawHttp::connect(srv.addr()).await;
        conn.send(b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\n\r\nping")
            .await;
        let response = conn.response().await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ping"[..]),
            "{imp}"
        );
        assert!(
            conn.closed().await,
            "{imp}: HTTP/1.0 without keep-alive must close"
        );
    }
}

/// `Expect: 100-continue` gets a 100 before the body is sent, then the echo.
#[tokio::test]
async fn expect_100_continue() {
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        let mut conn = RawHttp::connect(srv.addr()).await;
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
        assert_eq!(conn.response().await.status, 100, "{imp}");
        conn.send(b"hello").await;
        let response = conn.response().await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"hello"[..]),
            "{imp}"
        );
    }
}

/// A body over --max-message gets 413 and the connection closes, with Content-Length or chunked.
#[tokio::test]
async fn body_over_the_limit_is_413() {
    for imp in HTTP {
        let srv = Fixture::builder(imp)
            .max_message(1024)
            .start()
            .await
            .unwrap();
        let at_limit = exchange(srv.addr(), &post("/echo", None, &payload(1024, 0))).await;
        assert_eq!(at_limit.status, 200, "{imp}");

        let mut conn = RawHttp::connect(srv.addr()).await;
        conn.send(&post("/echo", None, &payload(1025, 0))).await;
        let response = conn.response().await;
        assert_eq!(response.status, 413, "{imp}");
        assert_eq!(response.header("connection"), Some("close"), "{imp}");
        assert!(
            String::from_utf8_lossy(&response.body).contains("limit of 1024 bytes"),
            "{imp}"
        );

        let mut conn = RawHttp::connect(srv.addr()).await;
        let mut chunked =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&payload(512, 1));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        conn.send(&chunked).await;
        assert_eq!(conn.response().await.status, 413, "{imp} chunked");
    }
}
