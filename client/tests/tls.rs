//! echo-client over TLS against every reference server made TLS by its fixture: echoes with
//! the connect split into its phases, TLS 1.2 and 1.3, resumption counted, and each way a
//! handshake goes wrong refused with a message that says what to change.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use echo_client::Config;
use echo_client::error::ErrorKind;
use echo_client::run::{RunError, RunOptions, run};
use echo_servers::{Fixture, Identity, Impl, Protocol};
use echobench_core::config::{TlsConfig, TlsVersion};

fn config(url: String, tls: TlsConfig, connections: u32, roundtrips: u64, total: u64) -> Config {
    Config {
        connections,
        roundtrips,
        total: Some(total),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        threads: 1,
        tls: Some(tls),
        ..Config::new(url)
    }
}

/// Writes `pem` to a file in `dir` and returns its path.
fn pem_file(dir: &tempfile::TempDir, name: &str, pem: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn trusting(path: PathBuf) -> TlsConfig {
    TlsConfig {
        cacert: Some(path),
        ..TlsConfig::default()
    }
}

/// Every server over TLS with both versions: exact counts, one handshake per connection, and
/// the connect split into TCP, TLS and (WebSocket) the upgrade, each with a sample per
/// connection.
#[tokio::test]
async fn every_server_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).tls().start().await.unwrap();
        let ca = pem_file(&dir, "ca.pem", srv.ca_pem().unwrap());
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let tls = TlsConfig {
                version: Some(version),
                ..trusting(ca.clone())
            };
            let report = run(config(srv.url(), tls, 2, 5, 40), RunOptions::default())
                .await
                .unwrap();
            let s = &report.summary;
            assert_eq!(s.errors, 0, "{imp}: {:?}", report.errors);
            assert_eq!((s.round_trips, s.connections_opened), (40, 8), "{imp}");
            let handshakes = s.tls.unwrap();
            assert_eq!((handshakes.handshakes, handshakes.resumed), (8, 0), "{imp}");
            let phases = report.latency.connect_phases.as_ref().unwrap();
            assert_eq!(phases.tcp.count, 8, "{imp}");
            assert_eq!(phases.tls.as_ref().unwrap().count, 8, "{imp}");
            let websocket = imp.protocol() == Protocol::WebSocket;
            assert_eq!(
                phases.upgrade.as_ref().map(|p| p.count),
                websocket.then_some(8)
            );
            // The phases add up to no more than the whole connect.
            assert!(phases.tcp.max <= report.latency.connect.max, "{imp}");
        }
        srv.shutdown().await.unwrap();
    }
}

/// `--tls-resume` with one connection at a time: every replacement resumes the session the
/// one before it left (the first may too, from the connection made before the load);
/// without it, none does.
#[tokio::test]
async fn resumption_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Fixture::builder(Impl::Hyper).tls().start().await.unwrap();
    let ca = pem_file(&dir, "ca.pem", srv.ca_pem().unwrap());
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        for resume in [false, true] {
            let tls = TlsConfig {
                version: Some(version),
                resume,
                ..trusting(ca.clone())
            };
            let report = run(config(srv.url(), tls, 1, 3, 30), RunOptions::default())
                .await
                .unwrap();
            let t = report.summary.tls.unwrap();
            assert_eq!(report.summary.errors, 0, "{:?}", report.errors);
            assert_eq!(t.handshakes, 10, "{version:?}");
            if resume {
                assert!(t.resumed >= 9, "{version:?}: {t:?}");
            } else {
                assert_eq!(t.resumed, 0, "{version:?}");
            }
            assert_eq!(report.config.tls.as_ref().unwrap().resume, resume);
        }
    }
}

/// A leaf for `names`, signed by a new authority; `expired` dates it in the past. Returns the
/// identity and the authority's PEM.
fn identity(names: &[&str], expired: bool) -> Identity {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, date_time_ymd};
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    if expired {
        leaf.not_before = date_time_ymd(2020, 1, 1);
        leaf.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Identity {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    }
}

/// A certificate from an authority not in --cacert, an expired one, one for another name,
/// and a plaintext server behind an https:// URL: the run does not start (exit 3's error),
/// and the reason says which it was; during a load the same failures count as tls_failed.
#[tokio::test]
async fn handshake_failures_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = pem_file(
        &dir,
        "stranger.pem",
        &Identity::generate(&[]).unwrap().ca_pem,
    );
    let expired = identity(&["localhost", "127.0.0.1"], true);
    let elsewhere = identity(&["other.example"], false);
    let plain = Fixture::start(Impl::Hyper).await.unwrap();
    let cases = [
        (
            "untrusted",
            Some(Identity::generate(&[]).unwrap()),
            None,
            "not signed by an authority in --cacert",
        ),
        (
            "expired",
            Some(expired.clone()),
            Some(expired.ca_pem.clone()),
            "has expired",
        ),
        (
            "another name",
            Some(elsewhere.clone()),
            Some(elsewhere.ca_pem.clone()),
            "not valid for 127.0.0.1",
        ),
        ("plaintext", None, None, "did not answer in TLS"),
    ];
    for (what, served, trusted, needle) in cases {
        let (url, _srv) = match served {
            Some(identity) => {
                let srv = Fixture::builder(Impl::Hyper)
                    .tls_identity(identity)
                    .start()
                    .await
                    .unwrap();
                (srv.url(), Some(srv))
            }
            None => (plain.url().replacen("http://", "https://", 1), None),
        };
        let ca = match trusted {
            Some(pem) => pem_file(&dir, "trusted.pem", &pem),
            None => stranger.clone(),
        };
        let err = run(config(url, trusting(ca), 1, 0, 10), RunOptions::default())
            .await
            .unwrap_err();
        let RunError::Unreachable { reason, hint, .. } = &err else {
            panic!("{what}: {err}");
        };
        assert!(reason.contains(needle), "{what}: {reason}");
        assert!(hint.contains("--cacert"), "{what}: {hint}");
    }
    assert_eq!(ErrorKind::TlsFailed.name(), "tls_failed");
}

/// `--insecure` accepts a certificate nobody trusts; with neither it nor --cacert, and with TLS
/// settings on a plaintext URL, the run is refused before anything connects.
#[tokio::test]
async fn insecure_and_refused_settings() {
    let srv = Fixture::builder(Impl::Tcp).tls().start().await.unwrap();
    let insecure = TlsConfig {
        insecure: true,
        ..TlsConfig::default()
    };
    let report = run(
        config(srv.url(), insecure.clone(), 1, 0, 10),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((report.summary.round_trips, report.summary.errors), (10, 0));

    let err = run(
        config(srv.url(), TlsConfig::default(), 1, 0, 10),
        RunOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("pass --cacert FILE"), "{err}");
    let plain = Fixture::start(Impl::Tcp).await.unwrap();
    let err = run(
        config(plain.url(), insecure, 1, 0, 10),
        RunOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("need an https://, wss:// or tls:// URL"),
        "{err}"
    );
}
