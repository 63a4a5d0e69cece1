//! Binding the listening socket. Servers never bind their own (the caller does, so tests can
//! use port 0), but every caller should bind through here: tokio's `TcpListener::bind` uses a
//! listen backlog of 128, and a burst of more connects than that overflows the accept queue,
//! drops SYNs, and stalls those clients for the kernel's 1 s SYN retransmit — which a benchmark
//! with connection churn would report as server latency.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// The listen backlog requested; Linux caps it at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr` with `SO_REUSEADDR` and a [`LISTEN_BACKLOG`] backlog, as a non-blocking std
/// listener (for runtimes started later, see [`crate::BlockingFixture`]).
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_with(addr, false)
}

/// [`bind_std`] with `SO_REUSEPORT` as well: every process that binds `addr` so (as the same
/// user) listens on it, and the kernel spreads new connections over them, the way
/// multi-process servers are deployed (`echo-server --processes`).
pub fn bind_shared_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_with(addr, true)
}

fn bind_with(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds `addr` for a server in the current tokio runtime; see [`bind_std`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_std(addr)?)
}

/// Binds `addr` shared with other processes ([`bind_shared_std`]) in the current runtime.
pub fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_shared_std(addr)?)
}
