//! WebSocket echo semantics shared by the `tungstenite` and `axum-ws` implementations: one echo
//! session loop, generic over the library's message and error types, so that both apply faults,
//! close codes and shutdown identically.
//!
//! | event | answer |
//! |---|---|
//! | text / binary message (fragmented or not) | echoed as one message of the same kind |
//! | ping | pong (queued by tungstenite, flushed with the next read or write) |
//! | close from the peer | close with the peer's code (tungstenite echoes it; 1002 if the code is not allowed) |
//! | invalid UTF-8 in text | close 1007 |
//! | message or frame over the limit | close 1009 |
//! | any other protocol violation | close 1002 (a close frame, never a dropped TCP connection) |
//! | server shutdown | close 1001 |
//! | `close_after` fault reached | close 1000 |
//!
//! `/broadcast` runs the relay session of [`relay`] instead (close 1008 for a subscriber too
//! slow for its queue).

pub mod axum_server;
pub(crate) mod relay;
pub mod tungstenite_server;

use std::fmt::Display;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_util::sync::CancellationToken;

use crate::fault::FaultPlan;

/// How long the server waits for the peer's reply to a close frame it sent before it drops the
/// connection anyway.
pub(crate) const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How long writing a close frame may take: a peer that has stopped reading (a stalled
/// broadcast subscriber) cannot take it, and is then dropped without it.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Close codes the servers send (RFC 6455 section 7.4.1).
pub mod close_code {
    /// Normal closure: the `close_after` fault.
    pub const NORMAL: u16 = 1000;
    /// Going away: the server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// Policy violation: a broadcast subscriber too slow for its queue.
    pub const POLICY: u16 = 1008;
    /// Text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
}

/// What the session loop needs from a library's message type.
pub(crate) trait EchoMessage: Sized {
    /// Whether this is a data message (text or binary) to echo; control frames are answered
    /// by the library itself.
    fn is_data(&self) -> bool;
    /// The same kind of message with one byte changed (see [`crate::fault::corrupt`]).
    fn corrupted(self) -> Self;
    /// A close frame.
    fn close(code: u16, reason: &'static str) -> Self;
}

/// A corrupted payload: still text when it was text (corruption keeps UTF-8 valid), else bytes.
pub(crate) enum Corrupted {
    /// The text with one byte changed.
    Text(String),
    /// The bytes with one byte changed.
    Binary(bytes::Bytes),
}

/// Corrupts a message's payload the way the fault promises (see [`crate::fault::corrupt`]).
pub(crate) fn corrupt_payload(payload: &[u8], is_text: bool) -> Corrupted {
    let mut bytes = payload.to_vec();
    crate::fault::corrupt(&mut bytes);
    if !is_text {
        return Corrupted::Binary(bytes.into());
    }
    // `corrupt` keeps UTF-8 valid, so this cannot fail; fall back to binary rather than panic
    // if that promise were ever broken.
    match String::from_utf8(bytes) {
        Ok(text) => Corrupted::Text(text),
        Err(err) => Corrupted::Binary(err.into_bytes().into()),
    }
}

/// How a session ended, for logging and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The close handshake completed (whoever started it), or the peer went away cleanly.
    Closed,
    /// The peer broke the protocol and was sent this close code.
    Failed(u16),
    /// The connection broke (I/O error, reset) and nothing could be sent.
    Dropped,
}

/// The close code and reason for a tungstenite error, or `None` when the connection is already
/// gone and nothing can be sent.
pub(crate) fn close_for(err: &WsError) -> Option<(u16, &'static str)> {
    match err {
        WsError::Utf8(_) => Some((close_code::INVALID_PAYLOAD, "invalid UTF-8 in text")),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some((close_code::TOO_BIG, "message too big"))
        }
        WsError::Capacity(CapacityError::TooManyHeaders) => None,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((close_code::PROTOCOL, "protocol error")),
        _ => None,
    }
}

/// Echoes data messages until the peer closes, breaks the protocol, the `close_after` fault
/// fires, or `shutdown` is cancelled.
pub(crate) async fn echo_session<S, M, E>(
    ws: &mut S,
    faults: &FaultPlan,
    shutdown: &CancellationToken,
    close_code_of: impl Fn(&E) -> Option<(u16, &'static str)>,
) -> Ending
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: EchoMessage,
    E: Display,
{
    let mut echoed: u64 = 0;
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                return close(ws, close_code::GOING_AWAY, "server shutting down").await;
            }
            next = ws.next() => next,
        };
        match next {
            None => return Ending::Closed,
            Some(Err(err)) => {
                tracing::debug!(%err, "websocket session failed");
                return failed(ws, &err, close_code_of).await;
            }
            Some(Ok(message)) if message.is_data() => {
                faults.hold().await;
                let message = if faults.next_echo_is_corrupt() {
                    message.corrupted()
                } else {
                    message
                };
                if ws.send(message).await.is_err() {
                    return Ending::Dropped;
                }
                echoed += 1;
                if faults.close_now(echoed) {
                    return close(ws, close_code::NORMAL, "close-after fault").await;
                }
            }
            // Ping, pong and close are answered inside the library.
            Some(Ok(_)) => {}
        }
    }
}

/// After a read error: sends the close frame its kind calls for, if the connection can still
/// take one.
pub(crate) async fn failed<S, M, E>(
    ws: &mut S,
    err: &E,
    close_code_of: impl Fn(&E) -> Option<(u16, &'static str)>,
) -> Ending
where
    S: Sink<M, Error = E> + Unpin,
    M: EchoMessage,
{
    match close_code_of(err) {
        Some((code, reason)) => match ws.send(M::close(code, reason)).await {
            Ok(()) => Ending::Failed(code),
            Err(_) => Ending::Dropped,
        },
        None => Ending::Dropped,
    }
}

/// Starts a close handshake and waits (bounded) for the peer's reply, so the close is clean.
pub(crate) async fn close<S, M, E>(ws: &mut S, code: u16, reason: &'static str) -> Ending
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: EchoMessage,
{
    let sent = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, ws.send(M::close(code, reason))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return Ending::Dropped;
    }
    let reply = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        // Data that crosses our close frame is discarded; the stream ends after the reply.
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    match reply {
        Ok(()) => Ending::Closed,
        Err(_) => Ending::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

    /// Each kind of tungstenite error maps to the close code the protocol asks for.
    #[test]
    fn close_codes_for_errors() {
        let cases: Vec<(WsError, Option<u16>)> = vec![
            (WsError::Utf8("bad".into()), Some(1007)),
            (
                WsError::Capacity(CapacityError::MessageTooLong {
                    size: 10,
                    max_size: 5,
                }),
                Some(1009),
            ),
            (
                WsError::Protocol(ProtocolError::NonZeroReservedBits),
                Some(1002),
            ),
            (
                WsError::Protocol(ProtocolError::UnmaskedFrameFromClient),
                Some(1002),
            ),
            (
                WsError::Protocol(ProtocolError::UnknownDataFrameType(3)),
                Some(1002),
            ),
            (
                WsError::Protocol(ProtocolError::ExpectedFragment(Data::Text)),
                Some(1002),
            ),
            (
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                None,
            ),
            (WsError::ConnectionClosed, None),
            (WsError::AlreadyClosed, None),
            (
                WsError::Io(std::io::ErrorKind::ConnectionReset.into()),
                None,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(close_for(&err).map(|(c, _)| c), code, "{err:?}");
        }
    }
}
