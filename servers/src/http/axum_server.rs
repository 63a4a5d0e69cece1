//! `axum`: the same HTTP echo written the way an axum 0.8 application is — a `Router`,
//! extractors, `DefaultBodyLimit` — and served by the shared hyper connection driver. Rejections
//! are mapped onto the shared responses so both HTTP servers answer identically.

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::acceptor::{self, Accept};
use crate::fault::FaultPlan;
use crate::options::Options;

/// What every handler needs: the fault plan and the body limit (for the 413 message).
#[derive(Debug, Clone)]
struct AppState {
    faults: Arc<FaultPlan>,
    limit: usize,
}

/// Serves HTTP echo on `listener` until `shutdown` is cancelled and connections have finished.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, super::ALPN)?;
    let faults = Arc::new(FaultPlan::new(options.faults));
    let router = router(AppState {
        faults: Arc::clone(&faults),
        limit: options.max_message,
    });
    let options = Arc::new(options);
    acceptor::run(listener, accept, shutdown, move |stream, _peer, token| {
        let service = TowerToHyperService::new(router.clone());
        let options = Arc::clone(&options);
        let faults = Arc::clone(&faults);
        async move {
            super::connection::serve(stream, service, &options, &faults, token).await;
        }
    })
    .await
}

fn router(state: AppState) -> Router {
    let limit = state.limit;
    Router::new()
        .route("/", get(index))
        .route("/echo", post(echo))
        .route("/json", post(json))
        .route("/status/{code}", get(status))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn index() -> Response {
    super::index()
}

async fn echo(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => super::echo(&state.faults, &headers, body).await,
        Err(rejection) => rejected(&rejection, state.limit),
    }
}

async fn json(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(body) => super::json(&state.faults, &body).await,
        Err(rejection) => rejected(&rejection, state.limit),
    }
}

async fn status(Path(code): Path<String>) -> Response {
    super::status(&code)
}

async fn not_found() -> Response {
    super::not_found()
}

fn rejected(rejection: &BytesRejection, limit: usize) -> Response<Body> {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        super::too_large(limit)
    } else {
        super::bad_body(&rejection.body_text())
    }
}
