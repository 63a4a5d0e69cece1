//! Every reference server over TLS, with a rustls client: echoes on each protocol, ALPN,
//! TLS 1.2 and 1.3, resumption on a second connection, and handshakes that go wrong (garbage
//! instead of a ClientHello, a stalled handshake, a reset half-way, a plaintext client): the
//! connection is closed and every other client keeps being served.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{STEP, payload};
use echo_servers::{Fixture, Impl, Protocol};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// A client trusting `ca_pem`, offering `alpn`, limited to `version` (or both versions).
fn client(
    ca_pem: &str,
    alpn: &[&[u8]],
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let versions = match version {
        Some(v) => vec![v],
        None => rustls::ALL_VERSIONS.to_vec(),
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn handshake(connector: &TlsConnector, srv: &Fixture) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(srv.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .expect("handshake within the step")
        .unwrap_or_else(|err| panic!("{}: handshake failed: {err}", srv.implementation()))
}

/// One echo of `body` in the implementation's protocol over an established stream.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(imp: Impl, stream: S, body: &[u8]) -> Vec<u8> {
    let work = async move {
        match imp.protocol() {
            Protocol::Tcp => {
                let mut stream = stream;
                stream.write_all(body).await.unwrap();
                let mut echo = vec![0; body.len()];
                stream.read_exact(&mut echo).await.unwrap();
                echo
            }
            Protocol::Http => http_echo(stream, body).await,
            Protocol::WebSocket => {
                let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
                    .await
                    .unwrap();
                ws.send(Message::binary(body.to_vec())).await.unwrap();
                match ws.next().await.unwrap().unwrap() {
                    Message::Binary(bytes) => bytes.to_vec(),
                    other => panic!("{imp}: expected a binary echo, got {other:?}"),
                }
            }
        }
    };
    tokio::time::timeout(STEP, work)
        .await
        .expect("echo within the step")
}

/// `POST /echo` with `body`, returning the response body (status 200 asserted).
async fn http_echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the whole response: {got:?}");
        got.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(at) = response.parse(&got).unwrap() {
            assert_eq!(response.code, Some(200));
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            if got.len() >= at + length {
                return got[at..at + length].to_vec();
            }
        }
    }
}

/// A fresh TLS client still gets its echo.
async fn still_serves(srv: &Fixture) {
    let imp = srv.implementation();
    let connector = client(srv.ca_pem().unwrap(), &[b"http/1.1"], None);
    let stream = handshake(&connector, srv).await;
    let body = payload(100, 3);
    assert_eq!(
        Box::pin(echo(imp, stream, &body)).await,
        body,
        "{imp}: not served"
    );
}

/// Each server over TLS 1.2 and 1.3: its URL names the TLS scheme, it agrees on
/// `http/1.1` when it speaks HTTP (and on nothing when it is raw TCP), and it echoes a
/// small and a 1 MiB message.
#[tokio::test]
async fn every_server_echoes_over_tls() {
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp).tls().start().await.unwrap();
        let scheme = imp.protocol().tls_scheme();
        assert!(
            srv.url().starts_with(&format!("{scheme}://")),
            "{}",
            srv.url()
        );
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let connector = client(srv.ca_pem().unwrap(), &[b"h2", b"http/1.1"], Some(version));
            for size in [1, 1 << 20] {
                let stream = handshake(&connector, &srv).await;
                let (_, session) = stream.get_ref();
                assert_eq!(session.protocol_version(), Some(version.version), "{imp}");
                let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
                let expected = (imp.protocol() != Protocol::Tcp).then(|| b"http/1.1".to_vec());
                assert_eq!(alpn, expected, "{imp}");
                let body = payload(size, 1);
                assert_eq!(
                    Box::pin(echo(imp, stream, &body)).await,
                    body,
                    "{imp} {size} bytes"
                );
            }
        }
        srv.shutdown().await.unwrap();
    }
}

/// A second connection from the same client resumes the first one's session, with TLS 1.2
/// session IDs and with TLS 1.3 tickets alike.
#[tokio::test]
async fn second_connections_resume() {
    let srv = Fixture::builder(Impl::Tcp).tls().start().await.unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let connector = client(srv.ca_pem().unwrap(), &[], Some(version));
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let mut stream = handshake(&connector, &srv).await;
            kinds.push(stream.get_ref().1.handshake_kind());
            // TLS 1.3 tickets arrive after the handshake: one echo reads them.
            stream.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            stream.read_exact(&mut one).await.unwrap();
        }
        assert_eq!(
            kinds,
            [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
            "{version:?}"
        );
    }
}

/// Whether the server has closed `stream` (EOF, reset, or a TLS alert and then EOF) within
/// the step; anything else it sends first is drained.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(STEP, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Garbage instead of a ClientHello, a plaintext request on the TLS port, a handshake that
/// stalls after a partial ClientHello (closed at the header timeout), and a client that resets
/// half-way through one: each connection is closed, and a fresh client is served after each,
/// on every implementation.
#[tokio::test]
async fn broken_handshakes_cost_only_their_connection() {
    let timeout = Duration::from_millis(300);
    let hello = client_hello().await;
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp)
            .tls()
            .header_timeout(timeout)
            .start()
            .await
            .unwrap();
        let partial = &hello[..hello.len() / 2];
        let cases: [(&str, &[u8]); 4] = [
            ("garbage", &[0x55; 600]),
            (
                "plaintext HTTP",
                b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            ),
            ("half a ClientHello, then silence", partial),
            ("nothing at all", b""),
        ];
        for (what, bytes) in cases {
            let mut raw = TcpStream::connect(srv.addr()).await.unwrap();
            raw.write_all(bytes).await.unwrap();
            let began = tokio::time::Instant::now();
            assert!(
                closed_by_server(&mut raw).await,
                "{imp}: {what} was not closed"
            );
            if bytes.len() < 600 && !what.starts_with("plaintext") {
                assert!(
                    began.elapsed() >= timeout / 2,
                    "{imp}: {what} closed before the timeout"
                );
            }
            Box::pin(still_serves(&srv)).await;
        }
        // A reset half-way: a partial ClientHello, then RST (SO_LINGER 0).
        let raw = TcpStream::connect(srv.addr()).await.unwrap();
        let std = raw.into_std().unwrap();
        std::io::Write::write_all(&mut &std, partial).unwrap();
        socket2::SockRef::from(&std)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(std);
        Box::pin(still_serves(&srv)).await;
        srv.shutdown().await.unwrap();
    }
}

/// The bytes of a real ClientHello, captured from a rustls client handshaking with a local
/// listener that never answers.
async fn client_hello() -> Vec<u8> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = echo_servers::Identity::generate(&[]).unwrap();
    let connector = client(&identity.ca_pem, &[], None);
    let dialing = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let _ = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await;
    });
    let (mut accepted, _) = listener.accept().await.unwrap();
    let mut hello = vec![0u8; 4096];
    let n = tokio::time::timeout(STEP, accepted.read(&mut hello))
        .await
        .unwrap()
        .unwrap();
    hello.truncate(n);
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    dialing.abort();
    hello
}
