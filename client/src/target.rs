//! Where the load goes: a URL parsed into protocol, TLS or not, address and request path, with
//! the loopback check that keeps a mistyped host from load-testing somebody else's machine.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use echobench_core::protocol::Protocol;

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The protocol its scheme names.
    pub protocol: Protocol,
    /// Whether the scheme means TLS (`https`, `wss`, `tls`).
    pub secure: bool,
    /// How connections start TLS ([`Target::for_config`] sets it for a secure URL).
    pub tls: Option<crate::tls::Dialer>,
    /// The URL's host without port or IPv6 brackets: what is resolved, and the TLS server
    /// name (SNI and the certificate check).
    pub server_name: String,
    /// The host as written in the URL (sent as `Host`).
    pub host: String,
    /// The port (explicit, or 80 for http/ws, 443 for https/wss).
    pub port: u16,
    /// The request path and query for HTTP and WebSocket (`/echo` for HTTP when the URL has
    /// none); empty for TCP.
    pub path: String,
    /// The address connections go to: the first one the host resolves to.
    pub addr: SocketAddr,
    /// `--source`: the local addresses connections are made from, in turn (empty: the
    /// kernel chooses).
    pub sources: Vec<IpAddr>,
    /// The next of `sources` to use, shared by every clone of this target.
    next_source: Arc<AtomicUsize>,
}

/// Why a URL cannot be used as a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error(
        "`{url}` is not a valid URL ({reason}); expected e.g. http://127.0.0.1:8080/echo, ws://127.0.0.1:8080/ws or tcp://127.0.0.1:9000"
    )]
    Invalid {
        /// The URL given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme we do not speak.
    #[error(
        "unsupported scheme `{scheme}` in `{url}`; use http://, ws://, tcp:// or, over TLS, https://, wss://, tls://"
    )]
    Scheme {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// tcp:// needs a port.
    #[error("`{url}` has no port; tcp:// and tls:// targets need one, e.g. tcp://127.0.0.1:9000")]
    NoPort {
        /// The URL given.
        url: String,
    },
    /// The host did not resolve.
    #[error("cannot resolve the host of `{url}`: {reason}")]
    Resolve {
        /// The URL given.
        url: String,
        /// The resolver's message.
        reason: String,
    },
    /// The TLS settings cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::SetupError),
    /// A `--source` address that cannot reach the target.
    #[error("--source {range}: {reason}")]
    Source {
        /// The range given.
        range: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The host is not loopback and remote targets were not allowed.
    #[error(
        "refusing to load {addr} ({url}): it is not a loopback address. echo-client generates heavy load and only targets this machine unless you pass --allow-remote, which you should do only for servers you are allowed to load-test"
    )]
    Remote {
        /// The URL given.
        url: String,
        /// The non-loopback address it resolved to.
        addr: SocketAddr,
    },
}

impl Target {
    /// The target of `config`: its URL parsed and resolved (see [`Target::parse`]), and for a
    /// TLS URL the dialer its TLS settings describe; TLS settings on a plaintext URL are
    /// refused.
    pub fn for_config(config: &echobench_core::config::Config) -> Result<Target, TargetError> {
        let mut target = Target::parse(&config.url, config.allow_remote)?;
        if let Some(range) = &config.source {
            let sources = range.addresses();
            let refuse = |reason: String| TargetError::Source {
                range: range.to_string(),
                reason,
            };
            if let Some(other) = sources
                .iter()
                .find(|a| a.is_ipv4() != target.addr.is_ipv4())
            {
                return Err(refuse(format!(
                    "{other} cannot reach {}: the source and the target must both be IPv4 or both IPv6",
                    target.addr
                )));
            }
            if !config.allow_remote
                && let Some(other) = sources.iter().find(|a| !a.is_loopback())
            {
                return Err(refuse(format!(
                    "{other} is not a loopback address; sources outside loopback need --allow-remote"
                )));
            }
            target.sources = sources;
        }
        let settings = config.tls.clone().unwrap_or_default();
        if target.secure {
            target.tls = Some(crate::tls::Dialer::new(
                &config.url,
                &target.server_name,
                target.protocol,
                &settings,
            )?);
        } else if config.tls.is_some() {
            return Err(crate::tls::SetupError::NotTls {
                url: config.url.clone(),
            }
            .into());
        }
        Ok(target)
    }

    /// Parses and resolves `url`; a host that resolves to anything outside loopback is refused
    /// unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
        let parsed = url::Url::parse(url).map_err(|err| TargetError::Invalid {
            url: url.to_owned(),
            reason: err.to_string(),
        })?;
        let Some((protocol, secure)) = Protocol::from_scheme(parsed.scheme()) else {
            return Err(TargetError::Scheme {
                url: url.to_owned(),
                scheme: parsed.scheme().to_owned(),
            });
        };
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            Some(host) => host.to_string(),
            None => {
                return Err(TargetError::Invalid {
                    url: url.to_owned(),
                    reason: "no host".to_owned(),
                });
            }
        };
        let Some(port) = parsed.port().or(protocol.default_port(secure)) else {
            return Err(TargetError::NoPort {
                url: url.to_owned(),
            });
        };
        let path = match protocol {
            Protocol::Tcp => String::new(),
            _ if !has_explicit_path(url) => protocol.default_path().to_owned(),
            _ => match parsed.query() {
                Some(query) => format!("{}?{query}", parsed.path()),
                None => parsed.path().to_owned(),
            },
        };
        let resolve_host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (resolve_host, port)
            .to_socket_addrs()
            .map_err(|err| TargetError::Resolve {
                url: url.to_owned(),
                reason: err.to_string(),
            })?
            .collect();
        let Some(&addr) = addrs.first() else {
            return Err(TargetError::Resolve {
                url: url.to_owned(),
                reason: "no addresses".to_owned(),
            });
        };
        if !allow_remote {
            // Every address must be loopback: a name that also resolves elsewhere is refused.
            if let Some(&remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(TargetError::Remote {
                    url: url.to_owned(),
                    addr: remote,
                });
            }
        }
        Ok(Target {
            url: url.to_owned(),
            protocol,
            secure,
            tls: None,
            server_name: resolve_host.to_owned(),
            host: match parsed.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            },
            port,
            path,
            addr,
            sources: Vec::new(),
            next_source: Arc::default(),
        })
    }

    /// The local address the next connection is made from, with `--source`.
    pub fn next_source(&self) -> Option<IpAddr> {
        if self.sources.is_empty() {
            return None;
        }
        let at = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
        Some(self.sources[at])
    }
}

/// Whether anything follows the authority of `url` (`http://h:1` has no path; `http://h:1/`
/// has one), which the URL parser cannot tell us because it normalizes both to `/`.
fn has_explicit_path(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.contains(['/', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// URLs parse to the protocol, Host header, path and address they name.
    #[test]
    fn parses_targets() {
        let cases = [
            (
                "http://127.0.0.1:8080",
                Protocol::Http,
                "127.0.0.1:8080",
                "/echo",
                8080,
            ),
            (
                "http://127.0.0.1:8080/",
                Protocol::Http,
                "127.0.0.1:8080",
                "/",
                8080,
            ),
            (
                "http://127.0.0.1:8080/json?x=1",
                Protocol::Http,
                "127.0.0.1:8080",
                "/json?x=1",
                8080,
            ),
            ("http://127.0.0.1", Protocol::Http, "127.0.0.1", "/echo", 80),
            (
                "ws://127.0.0.1:9/ws",
                Protocol::WebSocket,
                "127.0.0.1:9",
                "/ws",
                9,
            ),
            (
                "ws://127.0.0.1:9",
                Protocol::WebSocket,
                "127.0.0.1:9",
                "/",
                9,
            ),
            ("tcp://127.0.0.1:7", Protocol::Tcp, "127.0.0.1:7", "", 7),
            (
                "http://[::1]:8080/echo",
                Protocol::Http,
                "[::1]:8080",
                "/echo",
                8080,
            ),
            (
                "http://localhost:8080/echo",
                Protocol::Http,
                "localhost:8080",
                "/echo",
                8080,
            ),
        ];
        for (url, protocol, host, path, port) in cases {
            let target = Target::parse(url, false).unwrap();
            assert!(!target.secure, "{url}");
            assert_eq!(target.protocol, protocol, "{url}");
            assert_eq!(target.host, host, "{url}");
            assert_eq!(target.path, path, "{url}");
            assert_eq!(target.addr.port(), port, "{url}");
            assert!(target.addr.ip().is_loopback(), "{url}");
        }
    }

    /// TLS schemes: the protocol, the default port 443 for https/wss, and the server name
    /// (host without port or brackets) that SNI sends.
    #[test]
    fn parses_tls_targets() {
        let cases = [
            ("https://127.0.0.1/echo", Protocol::Http, 443, "127.0.0.1"),
            ("https://localhost:8443", Protocol::Http, 8443, "localhost"),
            ("wss://[::1]/ws", Protocol::WebSocket, 443, "::1"),
            ("wss://[::1]:9/ws", Protocol::WebSocket, 9, "::1"),
            ("tls://127.0.0.1:7", Protocol::Tcp, 7, "127.0.0.1"),
        ];
        for (url, protocol, port, name) in cases {
            let target = Target::parse(url, false).unwrap();
            assert!(target.secure, "{url}");
            assert_eq!(target.protocol, protocol, "{url}");
            assert_eq!(target.addr.port(), port, "{url}");
            assert_eq!(target.server_name, name, "{url}");
        }
    }

    /// Bad URLs and remote hosts are refused with a message naming the URL and the fix.
    #[test]
    fn refuses_bad_targets() {
        let cases = [
            ("127.0.0.1:8080", "is not a valid URL"),
            ("ftp://127.0.0.1:21/", "unsupported scheme `ftp`"),
            ("tls://127.0.0.1", "has no port"),
            ("tcp://127.0.0.1", "has no port"),
            ("http://10.1.2.3:80/", "not a loopback address"),
            ("ws://192.0.2.1:80/", "--allow-remote"),
        ];
        for (url, needle) in cases {
            let err = Target::parse(url, false).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
        // Allowed explicitly, a remote address parses (nothing is sent by parsing).
        assert!(Target::parse("http://10.1.2.3:80/", true).is_ok());
    }
}
