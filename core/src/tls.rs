//! How a TLS target is spoken to: the settings a run's config carries for `https://`,
//! `wss://` and `tls://` URLs (what is trusted, which versions, whether sessions resume).

use serde::{Deserialize, Serialize};

use crate::config::{UnknownChoice, choose};

/// A TLS protocol version (`--tls-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// The choices by name.
    pub const ALL: [(&'static str, TlsVersion); 2] =
        [("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)];

    /// Its name (`1.2`, `1.3`), as `--tls-version` takes it.
    pub fn name(self) -> &'static str {
        TlsVersion::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(name, _)| name)
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<TlsVersion, UnknownChoice> {
        choose(&TlsVersion::ALL, s)
    }
}

/// How an `https://`, `wss://` or `tls://` target is spoken to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// PEM certificates to trust (`--cacert`): the only ones trusted (no system or webpki
    /// roots), so a run's trust is exactly what its config says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<std::path::PathBuf>,
    /// Accept any certificate (`--insecure`); signatures are still checked, so the handshake
    /// costs what a verified one does, minus the chain check.
    #[serde(default)]
    pub insecure: bool,
    /// Only this version (`--tls-version`); `None` offers 1.3 and 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<TlsVersion>,
    /// Resume sessions on replacement connections (`--tls-resume`: TLS 1.3 tickets, TLS 1.2
    /// session IDs or tickets); otherwise every connection does a full handshake.
    #[serde(default)]
    pub resume: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each version's name is the one `--tls-version` parses and the report writes.
    #[test]
    fn version_names() {
        for (name, version) in TlsVersion::ALL {
            assert_eq!(version.name(), name);
            assert_eq!(name.parse::<TlsVersion>().unwrap(), version);
            assert_eq!(
                serde_json::to_string(&version).unwrap(),
                format!("\"{name}\"")
            );
        }
    }
}
