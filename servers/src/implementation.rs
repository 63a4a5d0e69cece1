//! The catalogue of reference servers: one [`Impl`] per implementation, with the protocol it
//! speaks and the library it is built on. Adding a server means adding a variant here and a
//! module that provides `serve(listener, options, shutdown)`.

use std::fmt;
use std::str::FromStr;

/// The wire protocol a reference server speaks (the workspace's one protocol table: scheme,
/// echo path, default port).
pub use echobench_core::Protocol;

/// One reference echo server implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// HTTP/1.1 served by hyper 1.x directly (`service_fn`, no framework).
    Hyper,
    /// HTTP served by an axum 0.8 `Router` with extractors.
    Axum,
    /// WebSocket on tokio-tungstenite directly.
    Tungstenite,
    /// WebSocket through axum's `WebSocketUpgrade` extractor.
    AxumWs,
    /// Raw TCP echo on tokio: the floor every protocol is compared against.
    Tcp,
}

impl Impl {
    /// Every implementation, in the order `echo-server --list` prints them.
    pub const ALL: [Impl; 5] = [
        Impl::Hyper,
        Impl::Axum,
        Impl::Tungstenite,
        Impl::AxumWs,
        Impl::Tcp,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Hyper => "hyper",
            Impl::Axum => "axum",
            Impl::Tungstenite => "tungstenite",
            Impl::AxumWs => "axum-ws",
            Impl::Tcp => "tcp",
        }
    }

    /// The protocol this implementation speaks.
    pub fn protocol(self) -> Protocol {
        match self {
            Impl::Hyper | Impl::Axum => Protocol::Http,
            Impl::Tungstenite | Impl::AxumWs => Protocol::WebSocket,
            Impl::Tcp => Protocol::Tcp,
        }
    }

    /// The library that does the protocol work, as printed by `echo-server --list`.
    pub fn library(self) -> &'static str {
        match self {
            Impl::Hyper => "hyper 1 (http1::Builder + service_fn)",
            Impl::Axum => "axum 0.8 (Router) on hyper 1",
            Impl::Tungstenite => "tokio-tungstenite 0.29",
            Impl::AxumWs => "axum 0.8 (WebSocketUpgrade) on tokio-tungstenite 0.29",
            Impl::Tcp => "tokio (TcpStream)",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not one of [`Impl::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown server implementation `{given}`; expected one of: {}", Impl::ALL.map(Impl::name).join(", "))]
pub struct UnknownImpl {
    /// The name that was given.
    pub given: String,
}

impl FromStr for Impl {
    type Err = UnknownImpl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Impl::ALL
            .into_iter()
            .find(|imp| imp.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownImpl {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name parses back to its implementation, and unknown names list the valid ones.
    #[test]
    fn names_round_trip() {
        for imp in Impl::ALL {
            assert_eq!(imp.name().parse::<Impl>(), Ok(imp));
            assert_eq!(imp.to_string(), imp.name());
        }
        let err = "nginx".parse::<Impl>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown server implementation `nginx`; expected one of: hyper, axum, tungstenite, axum-ws, tcp"
        );
    }
}
