//! One connection per protocol, behind one small trait the virtual clients drive: connect,
//! round trip (send one stamped message, read and verify its echo), close.
//!
//! The futures are `!Send`: every connection lives on its worker thread's event loop.

pub mod http;
pub mod tcp;
pub mod ws;

use std::future::Future;

use tokio::net::TcpStream;

use crate::config::Config;
use crate::error::Failure;
use crate::target::Target;

/// Bytes moved by one round trip, protocol framing included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes written.
    pub sent: usize,
    /// Bytes read.
    pub received: usize,
}

/// A connection that can do echo round trips.
pub(crate) trait Connection: Sized {
    /// Opens a connection (TCP connect, plus the upgrade for WebSocket).
    fn connect(target: &Target, config: &Config) -> impl Future<Output = Result<Self, Failure>>;

    /// Sends the message stamped with `id` and waits for its echo, which must be identical.
    /// `last` is the connection's final round trip (HTTP then asks the server to close).
    fn round_trip(
        &mut self,
        id: u64,
        last: bool,
    ) -> impl Future<Output = Result<Transfer, Failure>>;

    /// Whether another round trip may follow (false once the server announced it closes).
    fn reusable(&self) -> bool;

    /// Ends the connection politely (WebSocket close handshake; TCP/HTTP just close).
    fn close(self) -> impl Future<Output = ()>;
}

/// TCP connect with `TCP_NODELAY`, mapping errors onto connect failure kinds.
pub(crate) async fn tcp_connect(target: &Target) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(Failure::connect)?;
    stream.set_nodelay(true).map_err(Failure::connect)?;
    Ok(stream)
}
