//! TLS for `https://`, `wss://` and `tls://` targets, on rustls: one client configuration per
//! run (what to trust, which versions, whether to resume), shared by every worker thread, and
//! the handshake's failures turned into messages that say what to change.
//!
//! Nothing is trusted by default, not even the system's roots: a run trusts exactly the
//! certificates its `--cacert` names (or, with `--insecure`, checks only the handshake's
//! signatures), so its report says all there is to know about it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use echobench_core::Protocol;
use echobench_core::config::{TlsConfig, TlsVersion};

use crate::error::Failure;

/// Sessions the resumption cache keeps (per server name rustls keeps a few TLS 1.3 tickets;
/// one target has one name, so this only bounds memory).
const SESSION_CACHE: usize = 256;

/// What a connection needs to start TLS with the target: the shared configuration and the
/// name to send as SNI and to check the certificate against.
#[derive(Clone)]
pub struct Dialer {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// TLS settings that cannot be used, naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Neither something to trust nor `--insecure`.
    #[error(
        "{url} is a TLS URL, and echo-client trusts no certificate by default: pass --cacert FILE (the PEM of the authority that signed the server's certificate, e.g. what echo-server --cert-out wrote) or --insecure"
    )]
    NothingTrusted {
        /// The URL.
        url: String,
    },
    /// TLS flags with a plaintext URL.
    #[error(
        "--cacert, --insecure, --tls-version and --tls-resume need an https://, wss:// or tls:// URL, not {url}"
    )]
    NotTls {
        /// The URL.
        url: String,
    },
    /// The `--cacert` file is unreadable or holds no certificate.
    #[error("--cacert {path}: {reason}")]
    CaCert {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls cannot offer the versions asked for with its provider.
    #[error("--tls-version: {reason}")]
    Versions {
        /// What rustls said.
        reason: String,
    },
    /// The URL's host cannot be a TLS server name.
    #[error("the host of {url} cannot be a TLS server name: {reason}")]
    Name {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl Dialer {
    /// The dialer for `host` (the URL's host, brackets removed), speaking `protocol` over TLS,
    /// with `settings`.
    pub fn new(
        url: &str,
        host: &str,
        protocol: Protocol,
        settings: &TlsConfig,
    ) -> Result<Dialer, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.version {
            Some(TlsVersion::Tls12) => &[&rustls::version::TLS12],
            Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
            None => rustls::ALL_VERSIONS,
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|err| SetupError::Versions {
                reason: err.to_string(),
            })?;
        let mut config = match (&settings.cacert, settings.insecure) {
            (_, true) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            (Some(path), false) => builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            (None, false) => {
                return Err(SetupError::NothingTrusted {
                    url: url.to_owned(),
                });
            }
        };
        // HTTP and WebSocket offer HTTP/1.1, as the servers do; raw TLS offers nothing.
        config.alpn_protocols = match protocol {
            Protocol::Http | Protocol::WebSocket => vec![b"http/1.1".to_vec()],
            Protocol::Tcp => Vec::new(),
        };
        config.resumption = if settings.resume {
            Resumption::store(Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE)))
        } else {
            Resumption::disabled()
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|err| SetupError::Name {
            url: url.to_owned(),
            reason: err.to_string(),
        })?;
        Ok(Dialer {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// Runs the handshake over `tcp`; the stream and whether the session was resumed.
    pub(crate) async fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, bool), Failure> {
        let stream = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|err| Failure::Tls(explain(&err, &self.name)))?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Ok((stream, resumed))
    }
}

fn roots(path: &Path) -> Result<RootCertStore, SetupError> {
    let failed = |reason: String| SetupError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|err| failed(format!("cannot read it: {err}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| failed(format!("not PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| failed(format!("a certificate in it cannot be trusted: {err}")))?;
    }
    if roots.is_empty() {
        return Err(failed(
            "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(roots)
}

/// What a failed handshake means, in the terms of the flags that fix it.
fn explain(err: &std::io::Error, name: &ServerName<'_>) -> String {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server's certificate is not signed by an authority in --cacert".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for {} (the URL's host)",
                    name.to_str()
                )
            }
            other => format!("the server's certificate was refused: {other:?}"),
        },
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => {
            format!(
                "the server did not answer in TLS ({err}): is it serving plaintext? Then use http://, ws:// or tcp://"
            )
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {err}"),
    }
}

/// `--insecure`: any certificate is accepted, but the handshake's signatures are still
/// verified, so the handshake costs what a verified one does, minus the chain check.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
