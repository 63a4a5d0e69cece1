//! Servers under hostile input, over real sockets: malformed and oversized HTTP, slowloris,
//! raw WebSocket protocol violations, thousands of idle connections, and random bytes. Each
//! time the server must answer as documented, keep serving everyone else, and never panic.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Client, Echo, RawHttp, STEP, payload};
use echo_servers::{Fixture, Impl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const HTTP: [Impl; 2] = [Impl::Hyper, Impl::Axum];
const WS: [Impl; 2] = [Impl::Tungstenite, Impl::AxumWs];

/// Panics anywhere in the process (server tasks included) since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// A fresh client still gets its echo.
async fn still_serves(imp: Impl, addr: std::net::SocketAddr) {
    let mut client = Client::connect(imp, addr).await;
    let body = payload(64, 9);
    assert_eq!(
        client.echo(&body).await,
        Echo::Bytes(body),
        "{imp}: a fresh client is not served"
    );
}

/// Malformed request lines and headers get 400 and the connection closes; heads over 64 KiB
/// get 431.
#[tokio::test]
async fn malformed_http_is_400_and_oversized_heads_431() {
    count_panics();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "bad version",
            b"GET / HTTP/7.7\r\nHost: t\r\n\r\n".to_vec(),
            400,
        ),
        (
            "header without a colon",
            b"GET / HTTP/1.1\r\nHost t\r\n\r\n".to_vec(),
            400,
        ),
        (
            "control byte in a header",
            b"GET / HTTP/1.1\r\nHost: t\x01\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad content-length",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two content-lengths",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            400,
        ),
        ("head over 64 KiB", huge.into_bytes(), 431),
    ];
    for imp in HTTP {
        let srv = Fixture::start(imp).await.unwrap();
        for (name, request, status) in &cases {
            let mut conn = RawHttp::connect(srv.addr()).await;
            conn.send(request).await;
            let response = conn.response().await;
            assert_eq!(response.status, *status, "{imp}: {name}");
            assert!(
                conn.closed().await,
                "{imp}: {name}: the connection must close"
            );
        }
        still_serves(imp, srv.addr()).await;
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server panicked");
}

/// A client trickling its request head one byte at a time is cut off after the header
/// timeout, while another client keeps getting its echoes throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off() {
    count_panics();
    let timeout = Duration::from_millis(600);
    for imp in [Impl::Hyper, Impl::Axum, Impl::Tungstenite, Impl::AxumWs] {
        let srv = Fixture::builder(imp)
            .header_timeout(timeout)
            .start()
            .await
            .unwrap();
        let addr = srv.addr();
        let started = Instant::now();
        let attacker = tokio::spawn(async move {
            let mut slow = TcpStream::connect(addr).await.unwrap();
            let head = b"GET /ws HTTP/1.1\r\nHost: slow\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            for byte in head.iter().cycle().take(200) {
                // The attack itself: one byte every 100 ms, never finishing the head.
                if slow.write_all(&[*byte]).await.is_err() {
                    return started.elapsed();
                }
                let mut probe = [0u8; 64];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(100), slow.read(&mut probe)).await
                {
                    return started.elapsed();
                }
            }
            panic!("{imp}: the slow client was never cut off");
        });
        let mut client = Client::connect(imp, addr).await;
        let mut served = 0;
        while !attacker.is_finished() {
            let body = payload(32, (served % 200) as u8);
            assert_eq!(client.echo(&body).await, Echo::Bytes(body), "{imp}");
            served += 1;
            assert!(
                started.elapsed() < STEP,
                "{imp}: the slow client was never cut off"
            );
        }
        let cut_after = attacker.await.unwrap();
        assert!(
            cut_after >= timeout,
            "{imp}: cut off after {cut_after:?}, before the timeout"
        );
        assert!(
            cut_after < timeout + Duration::from_secs(3),
            "{imp}: cut off only after {cut_after:?}"
        );
        assert!(
            served > 0,
            "{imp}: the honest client was not served meanwhile"
        );
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server panicked");
}

/// Completes a WebSocket handshake by hand, so raw (even unmasked) frames can follow.
async fn raw_websocket(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Reads one server frame and returns its close code (the server never masks).
async fn close_code(stream: &mut TcpStream) -> u16 {
    let mut header = [0u8; 2];
    tokio::time::timeout(STEP, stream.read_exact(&mut header))
        .await
        .expect("no frame")
        .unwrap();
    assert_eq!(
        header[0], 0x88,
        "expected a final close frame, got {header:?}"
    );
    let len = usize::from(header[1] & 0x7f);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    u16::from_be_bytes([body[0], body[1]])
}

/// Raw violations no library client will send: an unmasked frame, reserved bits, an unknown
/// opcode, and a 64-bit length with its top bit set; each is answered with close 1002 (or
/// 1009 for the absurd length), never a dropped connection.
#[tokio::test]
async fn raw_websocket_violations() {
    count_panics();
    let masked = |first: u8, payload: &[u8]| {
        let mut frame = vec![first, 0x80 | payload.len() as u8, 1, 2, 3, 4];
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
        frame
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "unmasked text frame",
            vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
            1002,
        ),
        ("RSV2 set", masked(0xa1, b"x"), 1002),
        ("RSV3 set", masked(0x91, b"x"), 1002),
        ("opcode 0x3", masked(0x83, b"x"), 1002),
        ("opcode 0xb", masked(0x8b, b""), 1002),
        (
            "ping over 125 bytes",
            {
                let mut f = vec![0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0];
                f.extend([0u8; 126]);
                f
            },
            1002,
        ),
        (
            "2^63-byte frame",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1009,
        ),
    ];
    for imp in WS {
        let srv = Fixture::start(imp).await.unwrap();
        for (name, bytes, code) in &cases {
            let mut stream = raw_websocket(srv.addr()).await;
            stream.write_all(bytes).await.unwrap();
            assert_eq!(close_code(&mut stream).await, *code, "{imp}: {name}");
        }
        still_serves(imp, srv.addr()).await;
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server panicked");
}

/// Raises the soft open-file limit to the hard one and returns it.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    hard
}

/// 5,000 idle connections (fewer only if the file limit cannot hold both ends) do not stop an
/// active client from getting its echoes, on every server.
#[tokio::test]
async fn thousands_of_idle_connections() {
    count_panics();
    let limit = raise_open_files();
    // Both ends of every connection live in this process.
    let idle = 5000.min((limit.saturating_sub(500) / 2) as usize);
    assert!(
        idle >= 1000,
        "the open-file limit ({limit}) is too low for this test"
    );
    if idle < 5000 {
        eprintln!("open-file limit {limit}: using {idle} idle connections instead of 5000");
    }
    for imp in Impl::ALL {
        let srv = Fixture::start(imp).await.unwrap();
        let mut parked = Vec::with_capacity(idle);
        for _ in 0..idle {
            parked.push(TcpStream::connect(srv.addr()).await.unwrap());
        }
        let mut client = Client::connect(imp, srv.addr()).await;
        for round in 0..50u8 {
            let body = payload(48, round);
            assert_eq!(
                client.echo(&body).await,
                Echo::Bytes(body),
                "{imp} round {round}"
            );
        }
        // The idle connections are still open (not dropped to make room).
        let mut open = 0;
        for conn in &parked {
            let mut probe = [0u8; 1];
            if matches!(conn.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                open += 1;
            }
        }
        assert_eq!(open, idle, "{imp}: idle connections were closed");
        drop(parked);
        srv.shutdown().await.unwrap();
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server panicked");
}

mod random_bytes {
    //! Random byte streams against every server (proptest): whatever arrives, the server
    //! survives and a fresh client is still echoed.

    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// One long-lived server per implementation for all cases.
    fn servers() -> &'static Vec<echo_servers::BlockingFixture> {
        static SERVERS: OnceLock<Vec<echo_servers::BlockingFixture>> = OnceLock::new();
        SERVERS.get_or_init(|| {
            Impl::ALL
                .iter()
                .map(|&imp| {
                    Fixture::builder(imp)
                        .header_timeout(Duration::from_millis(200))
                        .start_blocking()
                        .unwrap()
                })
                .collect()
        })
    }

    fn runtime() -> &'static tokio::runtime::Runtime {
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
    }

    /// Bytes that start like the protocol and then go wrong, or are noise from the start.
    fn hostile() -> impl Strategy<Value = Vec<u8>> {
        let noise = prop::collection::vec(any::<u8>(), 0..4096);
        prop_oneof![
            noise.clone(),
            noise.clone().prop_map(|tail| [b"POST /echo HTTP/1.1\r\nContent-Length: 9999\r\n".to_vec(), tail].concat()),
            noise.clone().prop_map(|tail| [b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(), tail].concat()),
            noise.prop_map(|tail| [vec![0x82, 0xfe, 0x10, 0x00], tail].concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// After any byte stream, every server still echoes a fresh client, and nothing panicked.
        #[test]
        fn servers_survive_random_bytes(bytes in hostile()) {
            count_panics();
            runtime().block_on(async {
                for srv in servers() {
                    let addr = srv.addr();
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                    // Read whatever the server says until it closes, bounded.
                    let mut sink = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
                    still_serves(srv.implementation(), addr).await;
                }
            });
            prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
        }
    }
}
