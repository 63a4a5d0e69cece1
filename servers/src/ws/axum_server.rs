//! `axum-ws`: WebSocket through axum 0.8's `WebSocketUpgrade` extractor, as an axum
//! application would write it, served by the shared hyper connection driver (which performs
//! the HTTP upgrade). `/ws` and `/` echo, `/broadcast` relays. Non-upgrade requests get axum's
//! rejection (400/405/426).

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{EchoMessage, relay};
use crate::acceptor::{self, Accept};
use crate::broadcast::Hub;
use crate::fault::FaultPlan;
use crate::options::Options;

#[derive(Debug, Clone)]
struct AppState {
    faults: Arc<FaultPlan>,
    /// The `/broadcast` relay.
    hub: Arc<Hub<Message>>,
    max_message: usize,
    /// Preallocated read buffer per connection (`None`: the library's default).
    read_buffer: Option<usize>,
    /// Cancelled at server shutdown, so upgraded sessions (which outlive their HTTP
    /// connection's task) can send close 1001.
    shutdown: CancellationToken,
    /// Upgraded sessions run in tasks axum spawns, outside the accept loop's set; this lets
    /// `serve` wait for their close handshakes before it returns.
    sessions: TaskTracker,
}

/// Serves WebSocket echo on `listener` until `shutdown` is cancelled and sessions have closed.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, crate::http::ALPN)?;
    let faults = Arc::new(FaultPlan::new(options.faults));
    let sessions = TaskTracker::new();
    let hub = Arc::new(Hub::new(options.broadcast));
    let router = Router::new()
        .route("/ws", any(upgrade))
        .route("/", any(upgrade))
        .route("/broadcast", any(broadcast))
        .with_state(AppState {
            faults: Arc::clone(&faults),
            hub: Arc::clone(&hub),
            max_message: options.max_message,
            read_buffer: options.ws_read_buffer,
            shutdown: shutdown.clone(),
            sessions: sessions.clone(),
        });
    let options = Arc::new(options);
    acceptor::run(listener, accept, shutdown, move |stream, _peer, token| {
        let service = TowerToHyperService::new(router.clone());
        let options = Arc::clone(&options);
        let faults = Arc::clone(&faults);
        async move {
            crate::http::connection::serve(stream, service, &options, &faults, token).await;
        }
    })
    .await?;
    sessions.close();
    if tokio::time::timeout(acceptor::SHUTDOWN_GRACE, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = sessions.len(),
            "websocket sessions still open after the grace period"
        );
    }
    hub.log_counts();
    Ok(())
}

async fn upgrade(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    configured(&state, upgrade).on_upgrade(move |mut socket: WebSocket| async move {
        let _session = state.sessions.token();
        super::echo_session(&mut socket, &state.faults, &state.shutdown, close_for).await;
    })
}

async fn broadcast(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    configured(&state, upgrade).on_upgrade(move |mut socket: WebSocket| async move {
        let _session = state.sessions.token();
        relay::broadcast_session(&mut socket, &state.hub, &state.shutdown, close_for).await;
    })
}

/// The limits and read buffer every upgrade gets.
fn configured(state: &AppState, upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    let upgrade = match state.read_buffer {
        Some(bytes) => upgrade.read_buffer_size(bytes),
        None => upgrade,
    };
    upgrade
        .max_message_size(state.max_message)
        .max_frame_size(state.max_message)
}

/// axum wraps tungstenite's error; look through it to pick the close code.
fn close_for(err: &axum::Error) -> Option<(u16, &'static str)> {
    let source = std::error::Error::source(err)?;
    super::close_for(source.downcast_ref::<WsError>()?)
}

impl EchoMessage for Message {
    fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_))
    }

    fn corrupted(self) -> Self {
        let corrupted = match &self {
            Message::Text(text) => super::corrupt_payload(text.as_str().as_bytes(), true),
            other => super::corrupt_payload(&other.clone().into_data(), false),
        };
        match corrupted {
            super::Corrupted::Text(text) => Message::Text(text.into()),
            super::Corrupted::Binary(bytes) => Message::Binary(bytes),
        }
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}
