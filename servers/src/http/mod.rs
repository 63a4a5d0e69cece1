//! HTTP echo semantics shared by the `hyper` and `axum` implementations, so both answer every
//! request identically: the routes, the status codes, and every response body are built here.
//! Each implementation only maps its own request types onto these functions.
//!
//! | request | response |
//! |---|---|
//! | `POST /echo` | 200, the body byte-for-byte, the request's `Content-Type` (default `application/octet-stream`) |
//! | `GET /` | 200, a short `text/plain` body ([`INDEX_BODY`]) |
//! | `POST /json` | 200 re-serialized JSON, or 400 with `{"error": ...}` |
//! | `GET /status/{code}` | that status (200..=599), empty body |
//! | body over the limit | 413 and `Connection: close` |
//! | request head over 64 KiB | 431 (hyper) and close |
//! | malformed request line or header | 400 (hyper) and close |
//! | head not complete within the header timeout | connection closed |
//! | unknown path / wrong method | 404 / 405 with `Allow` |

pub mod axum_server;
pub mod connection;
pub mod hyper_server;

use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::fault::{self, FaultPlan};

/// The body of `GET /`.
pub const INDEX_BODY: &str = "echobench echo server: POST /echo echoes the body\n";

/// The `Content-Type` of an echo when the request has none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// What HTTP and WebSocket servers offer in TLS's ALPN: HTTP/1.1 only (they speak no h2).
pub(crate) const ALPN: &[&[u8]] = &[b"http/1.1"];

/// The `Allow` header of `GET` routes (axum adds HEAD to every GET route; so do we).
pub(crate) const ALLOW_GET: &str = "GET,HEAD";
/// The `Allow` header of `POST` routes.
pub(crate) const ALLOW_POST: &str = "POST";

/// The request body exceeded the server's limit.
pub(crate) fn too_large<B: From<Bytes>>(limit: usize) -> Response<B> {
    let mut response = text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the limit of {limit} bytes\n"),
    );
    // The rest of the body is unread, so the connection cannot carry another request.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request body could not be read (the client went away or sent a broken chunk).
pub(crate) fn bad_body<B: From<Bytes>>(err: &dyn std::fmt::Display) -> Response<B> {
    let mut response = text(
        StatusCode::BAD_REQUEST,
        format!("could not read the request body: {err}\n"),
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `GET /`.
pub(crate) fn index<B: From<Bytes>>() -> Response<B> {
    text(StatusCode::OK, INDEX_BODY.to_owned())
}

/// `POST /echo`: the body back with the request's content type, after the faults had their say.
pub(crate) async fn echo<B: From<Bytes>>(
    faults: &FaultPlan,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<B> {
    faults.hold().await;
    let body = if faults.next_echo_is_corrupt() {
        let mut bytes = body.to_vec();
        fault::corrupt(&mut bytes);
        Bytes::from(bytes)
    } else {
        body
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let mut response = Response::new(B::from(body));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// `POST /json`: parse and re-serialize, so the server does real JSON work per request.
pub(crate) async fn json<B: From<Bytes>>(faults: &FaultPlan, body: &[u8]) -> Response<B> {
    faults.hold().await;
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(err) => json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": format!("invalid JSON: {err}") }),
        ),
    }
}

/// `GET /status/{code}`: an empty response with that status, or 400 for a code outside
/// 200..=599 (1xx are not final responses).
pub(crate) fn status<B: From<Bytes>>(code: &str) -> Response<B> {
    match code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(status) => {
            let mut response = Response::new(B::from(Bytes::new()));
            *response.status_mut() = status;
            response
        }
        None => text(
            StatusCode::BAD_REQUEST,
            format!("`{code}` is not a status code between 200 and 599\n"),
        ),
    }
}

/// No route for the path.
pub(crate) fn not_found<B: From<Bytes>>() -> Response<B> {
    let mut response = Response::new(B::from(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// The path exists but not for this method.
pub(crate) fn method_not_allowed<B: From<Bytes>>(allow: &'static str) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::new()));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text<B: From<Bytes>>(status: StatusCode, body: String) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response<B: From<Bytes>>(status: StatusCode, value: &serde_json::Value) -> Response<B> {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
