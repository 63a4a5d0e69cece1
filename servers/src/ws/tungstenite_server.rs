//! `tungstenite`: WebSocket on tokio-tungstenite directly, the WebSocket floor. The handshake
//! accepts `/ws` and `/` (echo) and `/broadcast` (the relay; 404 otherwise); requests that are
//! not WebSocket upgrades are refused by tokio-tungstenite by closing the connection without a
//! response.

use std::io;
use std::sync::Arc;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::{CLOSE_REPLY_TIMEOUT, EchoMessage, Ending, relay};
use crate::acceptor::{self, Accept, Stream};
use crate::broadcast::Hub;
use crate::fault::FaultPlan;
use crate::options::Options;

/// Serves WebSocket echo on `listener` until `shutdown` is cancelled and sessions have closed.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, crate::http::ALPN)?;
    let faults = Arc::new(FaultPlan::new(options.faults));
    let hub = Arc::new(Hub::new(options.broadcast));
    let relay_hub = Arc::clone(&hub);
    let config = config(options.max_message, options.ws_read_buffer);
    let header_timeout = options.header_timeout;
    let served = acceptor::run(listener, accept, shutdown, move |stream, peer, token| {
        let faults = Arc::clone(&faults);
        let hub = Arc::clone(&relay_hub);
        async move {
            let mut route = Route::Echo;
            // The signature is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |request: &Request, response| check_path(request, response, &mut route);
            let handshake =
                tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
            let accepted = tokio::select! {
                () = token.cancelled() => return,
                accepted = tokio::time::timeout(header_timeout, handshake) => accepted,
            };
            let mut ws = match accepted {
                Ok(Ok(ws)) => ws,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, %err, "websocket handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "websocket handshake timed out");
                    return;
                }
            };
            let ending = match route {
                Route::Echo => {
                    super::echo_session(&mut ws, &faults, &token, super::close_for).await
                }
                Route::Broadcast => {
                    relay::broadcast_session(&mut ws, &hub, &token, super::close_for).await
                }
            };
            if let Ending::Failed(_) = ending {
                finish_after_failure(ws.get_mut()).await;
            }
        }
    })
    .await;
    hub.log_counts();
    served
}

/// The library settings: the message limit applies to whole (reassembled) messages and to
/// single frames alike.
pub(crate) fn config(max_message: usize, read_buffer: Option<usize>) -> WebSocketConfig {
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    match read_buffer {
        Some(bytes) => config.read_buffer_size(bytes),
        None => config,
    }
}

/// Which session a handshake asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/ws` or `/`.
    Echo,
    /// `/broadcast`.
    Broadcast,
}

/// The handshake callback: `/ws` and `/` echo, `/broadcast` relays; nothing else is a
/// WebSocket endpoint.
#[allow(clippy::result_large_err)] // the signature is tungstenite's
fn check_path(
    request: &Request,
    response: Response,
    route: &mut Route,
) -> Result<Response, ErrorResponse> {
    match request.uri().path() {
        "/ws" | "/" => Ok(response),
        "/broadcast" => {
            *route = Route::Broadcast;
            Ok(response)
        }
        _ => {
            let mut not_found = ErrorResponse::new(Some(
                "no WebSocket endpoint here; use /ws (echo) or /broadcast\n".into(),
            ));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            Err(not_found)
        }
    }
}

/// After a protocol error tokio-tungstenite's stream is finished, but our close frame is out.
/// Half-close, then read (and discard) until the peer closes too, so the connection ends with
/// FIN on both sides rather than a reset caused by unread data.
async fn finish_after_failure(tcp: &mut Stream) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

impl EchoMessage for Message {
    fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_))
    }

    fn corrupted(self) -> Self {
        let corrupted = match &self {
            Message::Text(text) => super::corrupt_payload(text.as_bytes(), true),
            other => super::corrupt_payload(&other.clone().into_data(), false),
        };
        match corrupted {
            super::Corrupted::Text(text) => Message::text(text),
            super::Corrupted::Binary(bytes) => Message::Binary(bytes),
        }
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}
