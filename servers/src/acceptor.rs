//! The accept loop shared by every implementation: accept, set `TCP_NODELAY`, hand the stream
//! to a per-connection task (which first does the TLS handshake when the server has TLS), and
//! on shutdown stop accepting, let connections finish within a grace period, then abort
//! whatever is left. Implementations differ only in the task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::options::Options;
use crate::tls::TlsError;

/// A client connection as the implementations see it: plain TCP, or TLS over it. (Either
/// costs plaintext one predictable branch per read or write.)
pub(crate) type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// What the accept loop needs to know about the server: whether it does TLS (and with which
/// ALPN protocols), and how long a handshake may take.
#[derive(Clone)]
pub(crate) struct Accept {
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Accept {
    /// From the server's options; `alpn` is what a TLS server offers (`http/1.1` for HTTP and
    /// WebSocket, nothing for raw TLS).
    pub(crate) fn new(options: &Options, alpn: &[&[u8]]) -> io::Result<Accept> {
        let tls = options
            .tls
            .as_ref()
            .map(|identity| identity.acceptor(alpn))
            .transpose()
            .map_err(|err: TlsError| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        Ok(Accept {
            tls,
            handshake_timeout: options.header_timeout,
        })
    }

    /// The TLS handshake, bounded by the header timeout; `None` (logged) when it fails.
    async fn handshake(&self, stream: TcpStream, peer: SocketAddr) -> Option<Stream> {
        let Some(tls) = &self.tls else {
            return Some(Either::Left(stream));
        };
        match tokio::time::timeout(self.handshake_timeout, tls.accept(stream)).await {
            Ok(Ok(stream)) => Some(Either::Right(stream)),
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "tls handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "tls handshake timed out");
                None
            }
        }
    }
}

/// How long connections get to finish after shutdown is requested before they are aborted.
/// WebSocket close handshakes and in-flight HTTP requests normally end well within this, and
/// it keeps the binary's promise to exit within 5 s of SIGTERM.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Back-off after an accept error such as `EMFILE`, so a full file table does not turn the
/// accept loop into a busy loop while connections drain.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Runs the accept loop until `shutdown` is cancelled, then drains connections.
///
/// `on_connection` builds the future that serves one connection once its handshake is done;
/// it is given a child token of `shutdown` so it can say goodbye (close 1001, finish the
/// request) when asked. A handshake cut short by shutdown serves nothing.
pub(crate) async fn run<F, Fut>(
    listener: TcpListener,
    accept: Accept,
    shutdown: CancellationToken,
    on_connection: F,
) -> io::Result<()>
where
    F: Fn(Stream, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_connection = Arc::new(on_connection);
    let accept = Arc::new(accept);
    let mut connections = JoinSet::new();
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    count += 1;
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %err, "could not set TCP_NODELAY");
                    }
                    let token = shutdown.child_token();
                    let (accept, on_connection) = (Arc::clone(&accept), Arc::clone(&on_connection));
                    connections.spawn(async move {
                        let stream = tokio::select! {
                            () = token.cancelled() => return,
                            stream = accept.handshake(stream, peer) => stream,
                        };
                        if let Some(stream) = stream {
                            on_connection(stream, peer, token).await;
                        }
                    });
                }
                Err(err) => {
                    // Accept errors concern one pending connection (or a full file table);
                    // the listener itself stays usable, so log, back off and go on.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    // Closing the listener makes new connection attempts fail at once instead of queueing.
    drop(listener);
    // With RUST_LOG=info, what a test or a harness log can check the load against.
    tracing::info!(accepted = count, "stopped accepting connections");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "connections still open after the shutdown grace period; aborting them"
        );
        connections.shutdown().await;
    }
    Ok(())
}
