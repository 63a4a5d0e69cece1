//! The `/broadcast` session both WebSocket servers run, generic over the library like the echo
//! session: data messages from the peer are published to the route's [`Hub`]; messages the hub
//! queued for the peer are sent to it in the hub's order.
//!
//! | event | answer |
//! |---|---|
//! | text / binary message | published to every subscriber, this one included |
//! | ping, close, invalid UTF-8, too big, protocol error | as in the echo session |
//! | queue full with the `disconnect` policy | close 1008 |
//! | server shutdown | close 1001 |
//!
//! Faults do not apply here: they exist to test echo clients.

use std::fmt::Display;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{EchoMessage, Ending, close, close_code};
use crate::broadcast::Hub;

/// Relays until the peer closes or breaks the protocol, the hub disconnects it, or `shutdown`
/// is cancelled.
pub(crate) async fn broadcast_session<S, M, E>(
    ws: &mut S,
    hub: &Hub<M>,
    shutdown: &CancellationToken,
    close_code_of: impl Fn(&E) -> Option<(u16, &'static str)>,
) -> Ending
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: EchoMessage + Clone,
    E: Display,
{
    let mut member = hub.join();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                return close(ws, close_code::GOING_AWAY, "server shutting down").await;
            }
            () = member.kicked.cancelled() => return too_slow(ws).await,
            queued = member.queue.recv() => {
                // The hub only lets go of a queue when it disconnects the subscriber.
                let Some(message) = queued else { return too_slow(ws).await };
                // A peer that does not read blocks this send; the hub's policy then applies
                // to what keeps arriving for it, and a disconnect must not wait for the send.
                let sent = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => {
                        return close(ws, close_code::GOING_AWAY, "server shutting down").await;
                    }
                    () = member.kicked.cancelled() => return too_slow(ws).await,
                    sent = ws.send(message) => sent,
                };
                if sent.is_err() {
                    return Ending::Dropped;
                }
            }
            next = ws.next() => match next {
                None => return Ending::Closed,
                Some(Err(err)) => {
                    tracing::debug!(%err, "broadcast session failed");
                    return super::failed(ws, &err, close_code_of).await;
                }
                Some(Ok(message)) if message.is_data() => hub.publish(&message),
                // Ping, pong and close are answered inside the library.
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn too_slow<S, M, E>(ws: &mut S) -> Ending
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: EchoMessage,
{
    close(
        ws,
        close_code::POLICY,
        "subscriber too slow: its broadcast queue was full",
    )
    .await
}
