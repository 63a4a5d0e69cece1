//! In-process servers for tests: start one on `127.0.0.1:0`, read its address, and it stops
//! when dropped. [`Fixture`] lives in the caller's tokio runtime; [`BlockingFixture`] brings a
//! runtime of its own on a thread, for tests that are not async.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::thread;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::implementation::Impl;
use crate::options::{Options, Stall};

/// Configures a fixture before starting it: limits, faults, address.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` or `start_blocking` is called"]
pub struct FixtureBuilder {
    implementation: Impl,
    options: Options,
    addr: SocketAddr,
    /// `.tls()`: make an identity at start (unless one was given).
    tls: bool,
    /// `.relay()` was asked of an HTTP implementation.
    no_relay: bool,
}

impl FixtureBuilder {
    /// Replaces all options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Largest HTTP body or WebSocket message accepted (413 / close 1009 beyond it).
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.options.max_message = bytes;
        self
    }

    /// Time allowed for an HTTP request head or WebSocket handshake.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.options.header_timeout = timeout;
        self
    }

    /// WebSocket servers: the read buffer each connection preallocates (default: the library's).
    pub fn ws_read_buffer(mut self, bytes: usize) -> Self {
        self.options.ws_read_buffer = Some(bytes);
        self
    }

    /// Delays every echo by `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options.faults.delay = Some(delay);
        self
    }

    /// Closes each connection after `n` echoes (WebSocket: close 1000; HTTP: `Connection:
    /// close` on the Nth response; TCP: after N reads). Zero turns the fault off.
    pub fn close_after(mut self, n: u64) -> Self {
        self.options.faults.close_after = NonZeroU64::new(n);
        self
    }

    /// Flips one byte of every Nth echo, counted across the server. Zero turns it off.
    pub fn corrupt_every(mut self, n: u64) -> Self {
        self.options.faults.corrupt_every = NonZeroU64::new(n);
        self
    }

    /// Stops answering for `duration` at every multiple of `every` after start.
    pub fn stall(mut self, every: Duration, duration: Duration) -> Self {
        self.options.faults.stall = Some(Stall { every, duration });
        self
    }

    /// Burns `cost` of CPU before every echo (a known handicap per round trip).
    pub fn echo_cost(mut self, cost: Duration) -> Self {
        self.options.faults.echo_cost = Some(cost);
        self
    }

    /// Sends at most `per_second` echoes per second in total; the rest queue (a known
    /// capacity). Zero turns it off.
    pub fn max_rate(mut self, per_second: u32) -> Self {
        self.options.faults.max_rate = std::num::NonZeroU32::new(per_second);
        self
    }

    /// Serves over TLS (`https://`, `wss://`, `tls://`) with a certificate made at start for
    /// `localhost`, `127.0.0.1` and `::1`; trust [`Fixture::ca_pem`] in the client.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serves over TLS with this identity (for example one made with
    /// [`Identity::generate`](crate::Identity::generate), or from files).
    pub fn tls_identity(mut self, identity: crate::tls::Identity) -> Self {
        self.options.tls = Some(identity);
        self
    }

    /// What a broadcast subscriber whose queue is full gets (default: disconnected).
    pub fn broadcast_policy(mut self, policy: crate::Policy) -> Self {
        self.options.broadcast.policy = policy;
        self
    }

    /// Messages each broadcast subscriber's queue holds (default 1024; zero means one).
    pub fn broadcast_queue(mut self, messages: usize) -> Self {
        self.options.broadcast.queue =
            std::num::NonZeroUsize::new(messages).unwrap_or(std::num::NonZeroUsize::MIN);
        self
    }

    /// `Impl::Tcp` only: serve the length-prefixed broadcast relay instead of echo (see
    /// [`crate::tcp`]); the WebSocket servers relay on `/broadcast` anyway.
    pub fn tcp_relay(mut self) -> Self {
        self.options.broadcast.tcp_relay = true;
        self
    }

    /// A broadcast relay of this implementation, whatever its protocol needs: `tcp_relay` for
    /// `Impl::Tcp`, nothing more for the WebSocket servers (`/broadcast`); an HTTP server has
    /// no relay, and `start` then fails. Its URL is [`Fixture::broadcast_url`].
    pub fn relay(self) -> Self {
        match self.implementation.protocol() {
            crate::Protocol::Tcp => self.tcp_relay(),
            crate::Protocol::WebSocket => self,
            crate::Protocol::Http => Self {
                no_relay: true,
                ..self
            },
        }
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The options to serve with, an identity made if `.tls()` asked for one, validated.
    fn prepared(mut self) -> io::Result<Self> {
        let invalid = |err: crate::OptionsError| io::Error::new(io::ErrorKind::InvalidInput, err);
        if self.no_relay {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is an HTTP server and has no broadcast relay; use a WebSocket or tcp implementation",
                    self.implementation
                ),
            ));
        }
        if self.options.broadcast.tcp_relay && self.implementation != Impl::Tcp {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tcp_relay is for Impl::Tcp; {} relays on /broadcast without it",
                    self.implementation
                ),
            ));
        }
        if self.tls && self.options.tls.is_none() {
            let identity = crate::tls::Identity::generate(&[]).map_err(|e| invalid(e.into()))?;
            self.options.tls = Some(identity);
        }
        self.options.validate().map_err(invalid)?;
        Ok(self)
    }

    /// Binds and starts serving in the current tokio runtime.
    pub async fn start(self) -> io::Result<Fixture> {
        let this = self.prepared()?;
        let ca_pem = this.options.tls.as_ref().map(|i| i.ca_pem.clone());
        let (implementation, options) = (this.implementation, this.options);
        let listener = crate::listener::bind(this.addr)?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(implementation.serve(listener, options, shutdown.clone()));
        Ok(Fixture {
            implementation,
            addr,
            ca_pem,
            shutdown,
            task: Some(task),
        })
    }

    /// Binds, then serves on a new thread with its own tokio runtime.
    pub fn start_blocking(self) -> io::Result<BlockingFixture> {
        let this = self.prepared()?;
        // Binding here, not on the thread, lets a bind error reach the caller directly.
        let listener = crate::listener::bind_std(this.addr)?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let implementation = this.implementation;
        let ca_pem = this.options.tls.as_ref().map(|i| i.ca_pem.clone());
        let options = this.options;
        let thread = thread::Builder::new()
            .name(format!("echo-fixture-{implementation}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    implementation.serve(listener, options, token).await
                })
            })?;
        Ok(BlockingFixture {
            implementation,
            addr,
            ca_pem,
            shutdown,
            thread: Some(thread),
        })
    }
}

/// A reference server running in the caller's tokio runtime. Dropping it asks the server to
/// stop; [`Fixture::shutdown`] also waits until it has.
#[derive(Debug)]
pub struct Fixture {
    implementation: Impl,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Fixture {
    /// Starts `implementation` with default options on `127.0.0.1:0`.
    pub async fn start(implementation: Impl) -> io::Result<Fixture> {
        Fixture::builder(implementation).start().await
    }

    /// A builder for options and faults.
    pub fn builder(implementation: Impl) -> FixtureBuilder {
        FixtureBuilder {
            implementation,
            options: Options::default(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: false,
            no_relay: false,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The echo endpoint: `http://ADDR/echo`, `ws://ADDR/ws` or `tcp://ADDR`; over TLS
    /// `https://`, `wss://` or `tls://`.
    pub fn url(&self) -> String {
        self.implementation.url(self.addr, self.ca_pem.is_some())
    }

    /// Over TLS, the certificate (PEM) a client must trust to accept the server's.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The broadcast relay: `ws://ADDR/broadcast`, or `tcp://ADDR` for a `tcp_relay` server;
    /// `None` for HTTP.
    pub fn broadcast_url(&self) -> Option<String> {
        self.implementation
            .broadcast_url(self.addr, self.ca_pem.is_some())
    }

    /// Which implementation is running.
    pub fn implementation(&self) -> Impl {
        self.implementation
    }

    /// Stops the server gracefully and waits until it has stopped, returning its result.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A reference server on a thread with its own runtime, for tests that are not async. Dropping
/// it stops the server and joins the thread.
///
/// ```
/// use std::io::{Read, Write};
/// use echo_servers::{Fixture, Impl};
///
/// let srv = Fixture::builder(Impl::Tcp).start_blocking()?;
/// let mut conn = std::net::TcpStream::connect(srv.addr())?;
/// conn.write_all(b"ping")?;
/// let mut echo = [0u8; 4];
/// conn.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct BlockingFixture {
    implementation: Impl,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: CancellationToken,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl BlockingFixture {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The echo endpoint: `http://ADDR/echo`, `ws://ADDR/ws` or `tcp://ADDR`; over TLS
    /// `https://`, `wss://` or `tls://`.
    pub fn url(&self) -> String {
        self.implementation.url(self.addr, self.ca_pem.is_some())
    }

    /// Over TLS, the certificate (PEM) a client must trust to accept the server's.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The broadcast relay: `ws://ADDR/broadcast`, or `tcp://ADDR` for a `tcp_relay` server;
    /// `None` for HTTP.
    pub fn broadcast_url(&self) -> Option<String> {
        self.implementation
            .broadcast_url(self.addr, self.ca_pem.is_some())
    }

    /// Which implementation is running.
    pub fn implementation(&self) -> Impl {
        self.implementation
    }

    /// Stops the server, joins its thread and returns the server's result.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.shutdown.cancel();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the fixture's server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for BlockingFixture {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::warn!(%err, "fixture server ended with an error");
        }
    }
}
