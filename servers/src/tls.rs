//! TLS for every reference server (`--tls`): a certificate made at start or read from files,
//! and the rustls acceptor the accept loop hands each connection to. The handshake runs in the
//! connection's own task under the header timeout, so a client that stalls it (slowloris), sends
//! garbage or resets mid-way costs that connection only.
//!
//! A certificate made at start comes from a throwaway certificate authority, also made at
//! start: clients trust the authority ([`Identity::ca_pem`], `--cert-out`), as they would a
//! real deployment's, and the server presents a leaf it signed for `localhost`, `127.0.0.1`,
//! `::1` and any other name asked for.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The names a certificate made at start is valid for, besides any the caller adds.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What a TLS server presents: its certificate chain and private key (PEM), and the
/// certificate a client should trust to accept it.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The server's certificate chain, leaf first (PEM).
    pub chain_pem: String,
    /// The leaf's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// What a client trusts: the authority that signed a generated leaf, or, for files, the
    /// chain as given (a self-signed certificate is its own authority).
    pub ca_pem: String,
}

impl fmt::Debug for Identity {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why a server cannot do TLS, naming the file or setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {what} file {}: {source}", path.display())]
    Read {
        /// `--cert` or `--key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error(
        "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----): {reason}",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The key file holds no PEM private key.
    #[error(
        "{} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, RSA or EC): {reason}",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the certificate and key (a key that does not match, an unsupported
    /// algorithm).
    #[error("the TLS certificate and key cannot be used: {0}")]
    Rejected(String),
    /// Making a certificate at start failed.
    #[error("cannot make a TLS certificate: {0}")]
    Generate(String),
    /// A PEM file could not be written.
    #[error("cannot write {what} to {}: {source}", path.display())]
    Write {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Where [`Identity::write`] puts an identity's three PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFiles {
    /// The certificate a client trusts (`--cacert`).
    pub ca: PathBuf,
    /// The server's certificate chain (`--cert`).
    pub cert: PathBuf,
    /// The chain's private key (`--key`), readable by its owner only.
    pub key: PathBuf,
}

impl PemFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> PemFiles {
        PemFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

impl Identity {
    /// A certificate authority and a leaf it signs for [`DEFAULT_NAMES`] and `names`, both
    /// made now (ECDSA P-256, valid until 4096).
    pub fn generate(names: &[String]) -> Result<Identity, TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let failed = |err: rcgen::Error| TlsError::Generate(err.to_string());
        let mut ca = CertificateParams::new(Vec::new()).map_err(failed)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "echobench test authority");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(failed)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut all: Vec<String> = DEFAULT_NAMES.iter().map(|n| (*n).to_owned()).collect();
        for name in names {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
        let mut leaf = CertificateParams::new(all).map_err(failed)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "echobench server");
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().map_err(failed)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(failed)?;
        Ok(Identity {
            chain_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            ca_pem: ca_cert.pem(),
        })
    }

    /// Reads a certificate chain and its key from PEM files (`--cert`, `--key`), checking
    /// that each holds what it should.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let (chain_pem, key_pem) = (read("--cert", cert)?, read("--key", key)?);
        chain(&chain_pem).map_err(|reason| TlsError::NoCertificate {
            path: cert.to_owned(),
            reason,
        })?;
        private_key(&key_pem).map_err(|reason| TlsError::NoKey {
            path: key.to_owned(),
            reason,
        })?;
        Ok(Identity {
            ca_pem: chain_pem.clone(),
            chain_pem,
            key_pem,
        })
    }

    /// The rustls acceptor for this identity. `alpn` lists the protocols offered (empty for
    /// raw TLS); TLS 1.2 and 1.3 are both accepted, and session tickets are issued so that
    /// clients can resume.
    pub(crate) fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let chain = chain(&self.chain_pem).map_err(TlsError::Rejected)?;
        let key = private_key(&self.key_pem).map_err(TlsError::Rejected)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|err| TlsError::Rejected(err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|err| TlsError::Rejected(err.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|err| TlsError::Rejected(err.to_string()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Writes the authority, the chain and the key as PEM files, so that a server that is not
    /// ours (`--cert`/`--key`) and its clients (`--cacert`) share this identity. The key file
    /// is created readable by its owner only.
    pub fn write(&self, files: &PemFiles) -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write = |what, path: &Path, text: &str, mode: u32| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(path)
                .and_then(|mut file| file.write_all(text.as_bytes()))
                .map_err(|source| TlsError::Write {
                    what,
                    path: path.to_owned(),
                    source,
                })
        };
        write("the certificate to trust", &files.ca, &self.ca_pem, 0o644)?;
        write("the certificate chain", &files.cert, &self.chain_pem, 0o644)?;
        write("the private key", &files.key, &self.key_pem, 0o600)
    }

    /// Checks that this identity makes an acceptor, so a server can refuse bad files before
    /// it listens.
    pub fn validate(&self) -> Result<(), TlsError> {
        self.acceptor(&[]).map(drop)
    }
}

fn chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| err.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found".to_owned());
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated identity makes an acceptor, and its key never shows in `Debug`.
    #[test]
    fn generated_identity_is_usable() {
        let identity = Identity::generate(&["echo.test".to_owned()]).unwrap();
        identity.validate().unwrap();
        assert!(identity.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(identity.ca_pem, identity.chain_pem);
        assert!(!format!("{identity:?}").contains("PRIVATE"));
    }

    /// Written files read back as the same identity, the key readable by its owner only; a
    /// folder that does not exist is named in the error.
    #[test]
    fn written_files_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::generate(&[]).unwrap();
        let files = PemFiles::in_dir(dir.path());
        identity.write(&files).unwrap();
        let read = Identity::from_files(&files.cert, &files.key).unwrap();
        assert_eq!(
            (read.chain_pem.as_str(), read.key_pem.as_str()),
            (identity.chain_pem.as_str(), identity.key_pem.as_str())
        );
        assert_eq!(std::fs::read_to_string(&files.ca).unwrap(), identity.ca_pem);
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let nowhere = PemFiles::in_dir(&dir.path().join("missing"));
        let err = identity.write(&nowhere).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot write the certificate to trust to ")
                && err.contains("missing/ca.pem"),
            "{err}"
        );
    }

    /// Files that are missing, hold the wrong thing, or do not match each other: one error
    /// each, naming the file.
    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = Identity::generate(&[]).unwrap();
        let other = Identity::generate(&[]).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let cert = write("cert.pem", &good.chain_pem);
        let key = write("key.pem", &good.key_pem);
        let other_key = write("other.pem", &other.key_pem);
        let garbage = write("garbage.pem", "not pem at all\n");
        let missing = dir.path().join("missing.pem");

        Identity::from_files(&cert, &key)
            .unwrap()
            .validate()
            .unwrap();
        let cases: [(&Path, &Path, &str); 5] = [
            (&missing, &key, "cannot read --cert file"),
            (&cert, &missing, "cannot read --key file"),
            (&garbage, &key, "holds no PEM certificate"),
            (&cert, &garbage, "holds no PEM private key"),
            (&key, &cert, "holds no PEM certificate"),
        ];
        for (c, k, expected) in cases {
            let err = Identity::from_files(c, k).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let mismatched = Identity::from_files(&cert, &other_key).unwrap();
        let err = mismatched.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("the TLS certificate and key cannot be used"),
            "{err}"
        );
    }
}
