//! One connection per protocol, behind one small trait the virtual clients drive: connect,
//! round trip (send one stamped message, read and verify its echo), close.
//!
//! The futures are `!Send`: every connection lives on its worker thread's event loop.

pub mod http;
pub mod tcp;
pub mod upgrade;
pub mod ws;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::either::Either;

use crate::error::Failure;
use crate::target::Target;
use echobench_core::config::Config;

/// Bytes moved by one round trip, protocol framing included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes written.
    pub sent: usize,
    /// Bytes read.
    pub received: usize,
}

/// A connection's byte stream: plain TCP, or TLS over it. For plaintext `Either` costs one
/// predictable branch per read or write and no allocation. The TLS side is boxed: rustls's
/// connection state is 1,112 bytes, and inline it made every plaintext connection (and each
/// copy of it in a virtual client's task) that large too.
pub(crate) type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// How a connection was opened, phase by phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opened {
    /// The TCP connect.
    pub tcp: Duration,
    /// The TLS handshake, over TLS.
    pub tls: Option<Duration>,
    /// Over TLS: whether the handshake resumed an earlier session.
    pub resumed: bool,
    /// The WebSocket upgrade, for WebSocket.
    pub upgrade: Option<Duration>,
}

/// TCP connect, then the TLS handshake if the target has TLS; each phase timed.
pub(crate) async fn dial(target: &Target) -> Result<(Stream, Opened), Failure> {
    let began = Instant::now();
    let tcp = tcp_connect(target).await?;
    let mut opened = Opened {
        tcp: began.elapsed(),
        ..Opened::default()
    };
    let Some(tls) = &target.tls else {
        return Ok((Either::Left(tcp), opened));
    };
    let began = Instant::now();
    let (stream, resumed) = tls.handshake(tcp).await?;
    opened.tls = Some(began.elapsed());
    opened.resumed = resumed;
    Ok((Either::Right(Box::new(stream)), opened))
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

    /// `--pipeline`: sends `count` messages, stamped `first_id`, `first_id + 1`, ..., back to
    /// back (one write where the protocol allows), then reads their echoes, each matched to
    /// its own message by its position and verified; pushes the instant each echo was
    /// complete onto `received` (so on an error it holds those completed before it).
    fn round_trips(
        &mut self,
        first_id: u64,
        count: usize,
        last: bool,
        received: &mut Vec<Instant>,
    ) -> impl Future<Output = Result<Transfer, Failure>>;

    /// Whether another round trip may follow (false once the server announced it closes).
    fn reusable(&self) -> bool;

    /// How the connection was opened.
    fn opened(&self) -> Opened;

    /// Ends the connection politely (WebSocket close handshake; TCP/HTTP just close).
    fn close(self) -> impl Future<Output = ()>;
}

/// TCP connect with `TCP_NODELAY`, mapping errors onto connect failure kinds.
async fn tcp_connect(target: &Target) -> Result<TcpStream, Failure> {
    let stream = match target.next_source() {
        None => TcpStream::connect(target.addr)
            .await
            .map_err(Failure::connect)?,
        Some(source) => {
            let socket = if target.addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(Failure::connect)?;
            if target.addr.is_ipv4() {
                // The port is chosen at connect, unique per 4-tuple, instead of reserved at
                // bind for every destination: a bind to port 0 otherwise needs a port that no
                // socket on the address holds (TIME_WAIT ones of earlier runs included).
                nix::sys::socket::setsockopt(
                    &socket,
                    nix::sys::socket::sockopt::IpBindAddressNoPort,
                    &true,
                )
                .map_err(|err| Failure::connect(io::Error::from(err)))?;
            }
            socket.bind(SocketAddr::new(source, 0)).map_err(|err| {
                Failure::connect(io::Error::new(
                    err.kind(),
                    format!("cannot bind --source address {source}: {err}"),
                ))
            })?;
            socket
                .connect(target.addr)
                .await
                .map_err(Failure::connect)?
        }
    };
    refuse_self_connection(stream.local_addr().ok(), stream.peer_addr().ok())?;
    stream.set_nodelay(true).map_err(Failure::connect)?;
    Ok(stream)
}

/// Linux lets a connect to a port nobody listens on succeed when the kernel happens to pick
/// that same port as the source ("TCP self-connect"; servers on port 0 and client sockets
/// share the ephemeral range). The connection then echoes everything back to itself, which
/// would count as perfect round trips to a server that is not there.
fn refuse_self_connection(
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
) -> Result<(), Failure> {
    match (local, peer) {
        (Some(local), Some(peer)) if local == peer => Err(Failure::ConnectRefused(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("the connection to {peer} reached itself: nothing listens there"),
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real self-connected socket (which Linux allows) is refused; ordinary ones pass.
    #[test]
    fn self_connections_are_refused() {
        use socket2::{Domain, Socket, Type};
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        let stream: std::net::TcpStream = socket.into();
        let (local, peer) = (stream.local_addr().unwrap(), stream.peer_addr().unwrap());
        assert_eq!(
            local, peer,
            "Linux allows the self-connect this guards against"
        );
        let err = refuse_self_connection(Some(local), Some(peer)).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::ConnectRefused);
        assert!(err.to_string().contains("reached itself"), "{err}");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(refuse_self_connection(client.local_addr().ok(), client.peer_addr().ok()).is_ok());
    }

    /// A plaintext connection's stream is no larger than a TCP stream and its variant tag:
    /// the TLS state, 1,112 bytes, stays behind the box (every idle connection carries its
    /// stream, several times over in its task).
    #[test]
    fn the_plaintext_stream_stays_small() {
        assert!(
            std::mem::size_of::<Stream>() <= 2 * std::mem::size_of::<TcpStream>(),
            "{} bytes",
            std::mem::size_of::<Stream>()
        );
    }
}
