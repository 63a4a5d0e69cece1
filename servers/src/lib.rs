//! Reference echo servers for benchmarking and for testing clients.
//!
//! Five implementations ([`Impl`]) over three protocols: HTTP on [hyper](http::hyper_server)
//! and on [axum](http::axum_server), WebSocket on [tokio-tungstenite](ws::tungstenite_server)
//! and on [axum's extractor](ws::axum_server), and [raw TCP](tcp) as the floor. Each module
//! has `serve(listener, options, shutdown)`: the caller binds the socket (so tests bind port 0
//! and read the address back; use [`bind`] for a backlog that survives connection bursts), and
//! cancelling `shutdown` stops the server gracefully. The same
//! [`Options`] carry limits, TLS ([`Identity`]), the [`broadcast`] relay's settings and
//! [`Faults`] for testing clients: delays, early closes, corrupted echoes, periodic stalls, a
//! CPU cost per echo and a capacity.
//!
//! The servers know nothing of measurement; the `echo-client` and `echo-harness` crates do.
//!
//! # As a test fixture
//!
//! [`Fixture`] starts a server on `127.0.0.1:0` in the current tokio runtime and stops it when
//! dropped; [`BlockingFixture`] does the same on a thread of its own for non-async tests.
//!
//! ```
//! use echo_servers::{Fixture, Impl};
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A WebSocket echo server that closes every connection after two echoes.
//! let srv = Fixture::builder(Impl::Tungstenite).close_after(2).start().await?;
//! let (mut ws, _) = tokio_tungstenite::connect_async(srv.url()).await?;
//!
//! for text in ["one", "two"] {
//!     ws.send(Message::text(text)).await?;
//!     assert_eq!(ws.next().await.unwrap()?, Message::text(text));
//! }
//! // The fault: the server now closes with 1000.
//! match ws.next().await.unwrap()? {
//!     Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
//!     other => panic!("expected a close frame, got {other:?}"),
//! }
//! // Reading on sends our reply; the server then closes the TCP connection.
//! assert!(ws.next().await.is_none());
//! srv.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Over TLS
//!
//! `.tls()` serves `https://`, `wss://` or `tls://` with a certificate made at start, signed by
//! an authority also made at start; [`Fixture::ca_pem`] is what the client under test trusts.
//! A complete test of a rustls client against it:
//!
//! ```
//! use std::sync::Arc;
//! use echo_servers::{Fixture, Impl};
//! use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let srv = Fixture::builder(Impl::Tcp).tls().start().await?;
//! assert!(srv.url().starts_with("tls://127.0.0.1:"));
//!
//! let mut roots = rustls::RootCertStore::empty();
//! for cert in CertificateDer::pem_slice_iter(srv.ca_pem().unwrap().as_bytes()) {
//!     roots.add(cert?)?;
//! }
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let config = rustls::ClientConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//! let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
//!
//! let tcp = tokio::net::TcpStream::connect(srv.addr()).await?;
//! // The certificate is valid for localhost, 127.0.0.1 and ::1.
//! let mut tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
//! tls.write_all(b"ping").await?;
//! let mut echo = [0u8; 4];
//! tls.read_exact(&mut echo).await?;
//! assert_eq!(&echo, b"ping");
//! srv.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod broadcast;
pub mod fault;
pub mod fixture;
pub mod http;
pub mod implementation;
pub mod listener;
pub mod options;
pub mod tcp;
pub mod tls;
pub mod ws;

mod acceptor;

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;

pub use broadcast::{Broadcast, Policy};
pub use fixture::{BlockingFixture, Fixture, FixtureBuilder};
pub use implementation::{Impl, Protocol, UnknownImpl};
pub use listener::{LISTEN_BACKLOG, bind, bind_shared, bind_shared_std, bind_std};
pub use options::{
    DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_MESSAGE, Faults, Options, OptionsError, Stall,
};
pub use tls::{Identity, PemFiles, TlsError};

impl Impl {
    /// Serves this implementation on `listener` until `shutdown` is cancelled, then lets open
    /// connections finish (WebSocket peers get close 1001, HTTP requests in flight are
    /// answered) for up to a few seconds.
    ///
    /// Fails at once with [`io::ErrorKind::InvalidInput`] if the options are invalid.
    pub async fn serve(
        self,
        listener: TcpListener,
        options: Options,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        options
            .validate()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        match self {
            Impl::Hyper => http::hyper_server::serve(listener, options, shutdown).await,
            Impl::Axum => http::axum_server::serve(listener, options, shutdown).await,
            Impl::Tungstenite => ws::tungstenite_server::serve(listener, options, shutdown).await,
            Impl::AxumWs => ws::axum_server::serve(listener, options, shutdown).await,
            Impl::Tcp => tcp::serve(listener, options, shutdown).await,
        }
    }

    /// The URL of this implementation's echo endpoint at `addr`, as printed in the ready line:
    /// `http://ADDR/echo`, `ws://ADDR/ws` or `tcp://ADDR`; over TLS `https://`, `wss://` or
    /// `tls://`.
    pub fn url(self, addr: SocketAddr, tls: bool) -> String {
        let protocol = self.protocol();
        format!(
            "{}://{addr}{}",
            protocol.scheme_for(tls),
            protocol.echo_path()
        )
    }

    /// The URL of the broadcast relay at `addr`: `ws://ADDR/broadcast` on the WebSocket
    /// servers, `tcp://ADDR` for `tcp` serving the relay (`tcp_relay`); `None` for HTTP.
    pub fn broadcast_url(self, addr: SocketAddr, tls: bool) -> Option<String> {
        let scheme = self.protocol().scheme_for(tls);
        match self.protocol() {
            Protocol::WebSocket => Some(format!("{scheme}://{addr}/broadcast")),
            Protocol::Tcp => Some(format!("{scheme}://{addr}")),
            Protocol::Http => None,
        }
    }
}
