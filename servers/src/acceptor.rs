//! The accept loop shared by every implementation: accept, set `TCP_NODELAY`, hand the stream
//! to a per-connection task, and on shutdown stop accepting, let connections finish within a
//! grace period, then abort whatever is left. Implementations differ only in the task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long connections get to finish after shutdown is requested before they are aborted.
/// WebSocket close handshakes and in-flight HTTP requests normally end well within this, and
/// it keeps the binary's promise to exit within 5 s of SIGTERM.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Back-off after an accept error such as `EMFILE`, so a full file table does not turn the
/// accept loop into a busy loop while connections drain.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Runs the accept loop until `shutdown` is cancelled, then drains connections.
///
/// `on_connection` builds the future that serves one connection; it is given a child token
/// of `shutdown` so it can say goodbye (close 1001, finish the request) when asked.
pub(crate) async fn run<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    mut on_connection: F,
) -> io::Result<()>
where
    F: FnMut(TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %err, "could not set TCP_NODELAY");
                    }
                    connections.spawn(on_connection(stream, peer, shutdown.child_token()));
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
