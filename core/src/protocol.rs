//! The wire protocols echobench speaks, and the one table of what each implies: its URL scheme
//! (plain and over TLS), the path a reference server echoes on, the path a client uses when a
//! URL names none, and the port a URL without one means. Servers, client and harness all read this table; none keeps
//! its own copy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (`http://`): each round trip is a `POST` whose body comes back as the body.
    Http,
    /// WebSocket (`ws://`, RFC 6455): each round trip is a message echoed as the same message.
    #[serde(rename = "websocket")]
    WebSocket,
    /// Raw TCP (`tcp://`): each round trip is a write whose bytes are read back.
    Tcp,
}

impl Protocol {
    /// Every protocol, in the order tables list them.
    pub const ALL: [Protocol; 3] = [Protocol::Http, Protocol::WebSocket, Protocol::Tcp];

    /// The name used in configs, reports and CSV columns (`http`, `websocket`, `tcp`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::WebSocket => "websocket",
            Protocol::Tcp => "tcp",
        }
    }

    /// The name people read in tables (`HTTP`, `WebSocket`, `TCP`).
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::WebSocket => "WebSocket",
            Protocol::Tcp => "TCP",
        }
    }

    /// The URL scheme (`http`, `ws`, `tcp`).
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::WebSocket => "ws",
            Protocol::Tcp => "tcp",
        }
    }

    /// The URL scheme over TLS (`https`, `wss`, `tls`).
    pub fn tls_scheme(self) -> &'static str {
        match self {
            Protocol::Http => "https",
            Protocol::WebSocket => "wss",
            Protocol::Tcp => "tls",
        }
    }

    /// The scheme, plain or over TLS.
    pub fn scheme_for(self, tls: bool) -> &'static str {
        if tls {
            self.tls_scheme()
        } else {
            self.scheme()
        }
    }

    /// The protocol a URL scheme names, if it is one of ours, and whether it means TLS.
    pub fn from_scheme(scheme: &str) -> Option<(Protocol, bool)> {
        Protocol::ALL.into_iter().find_map(|p| {
            if p.scheme().eq_ignore_ascii_case(scheme) {
                Some((p, false))
            } else if p.tls_scheme().eq_ignore_ascii_case(scheme) {
                Some((p, true))
            } else {
                None
            }
        })
    }

    /// The path a reference server echoes on (`/echo`, `/ws`; empty for TCP, which has none).
    pub fn echo_path(self) -> &'static str {
        match self {
            Protocol::Http => "/echo",
            Protocol::WebSocket => "/ws",
            Protocol::Tcp => "",
        }
    }

    /// The path a client uses for a URL with nothing after its authority: `/echo` for HTTP
    /// (the endpoint that echoes a body), `/` for WebSocket (what a URL without a path means in
    /// RFC 6455), none for TCP.
    pub fn default_path(self) -> &'static str {
        match self {
            Protocol::Http => "/echo",
            Protocol::WebSocket => "/",
            Protocol::Tcp => "",
        }
    }

    /// The port a URL without one means: 80 for HTTP and WebSocket, 443 over TLS; TCP has no
    /// default, so a `tcp://` or `tls://` URL must name its port.
    pub fn default_port(self, tls: bool) -> Option<u16> {
        match self {
            Protocol::Http | Protocol::WebSocket => Some(if tls { 443 } else { 80 }),
            Protocol::Tcp => None,
        }
    }

    /// The URL of an echo endpoint at `authority` (`host:port`).
    pub fn echo_url(self, authority: &str) -> String {
        format!("{}://{authority}{}", self.scheme(), self.echo_path())
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that is not one of [`Protocol::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{given}`; expected one of: http, websocket, tcp")]
pub struct UnknownProtocol {
    /// What was given.
    pub given: String,
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Protocol, UnknownProtocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProtocol {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, row by row: name, scheme, TLS scheme, server path, client default path,
    /// default port plain and over TLS.
    #[test]
    fn the_table() {
        let rows = [
            (
                Protocol::Http,
                "http",
                "http",
                "https",
                "/echo",
                "/echo",
                Some(80),
                Some(443),
            ),
            (
                Protocol::WebSocket,
                "websocket",
                "ws",
                "wss",
                "/ws",
                "/",
                Some(80),
                Some(443),
            ),
            (Protocol::Tcp, "tcp", "tcp", "tls", "", "", None, None),
        ];
        for (protocol, name, scheme, tls, echo, default, port, tls_port) in rows {
            assert_eq!(protocol.name(), name);
            assert_eq!(protocol.to_string(), name);
            assert_eq!(name.parse::<Protocol>(), Ok(protocol));
            assert_eq!(protocol.scheme(), scheme);
            assert_eq!(
                (protocol.scheme_for(false), protocol.scheme_for(true)),
                (scheme, tls)
            );
            assert_eq!(Protocol::from_scheme(scheme), Some((protocol, false)));
            assert_eq!(Protocol::from_scheme(tls), Some((protocol, true)));
            assert_eq!(
                Protocol::from_scheme(&tls.to_uppercase()),
                Some((protocol, true))
            );
            assert_eq!(protocol.echo_path(), echo);
            assert_eq!(protocol.default_path(), default);
            assert_eq!(protocol.default_port(false), port);
            assert_eq!(protocol.default_port(true), tls_port);
            assert_eq!(
                serde_json::to_string(&protocol).unwrap(),
                format!("\"{name}\"")
            );
        }
        assert_eq!(Protocol::from_scheme("udp"), None);
        assert_eq!(
            Protocol::WebSocket.echo_url("127.0.0.1:9"),
            "ws://127.0.0.1:9/ws"
        );
        assert_eq!(Protocol::Tcp.echo_url("127.0.0.1:9"), "tcp://127.0.0.1:9");
        assert_eq!(
            "udp".parse::<Protocol>().unwrap_err().to_string(),
            "unknown protocol `udp`; expected one of: http, websocket, tcp"
        );
    }
}
