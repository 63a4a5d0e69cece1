//! Misbehaving servers on loopback, for the client's hostile-peer tests: each accepts
//! connections on 127.0.0.1:0 and answers every one with a [`Behaviour`] — a lying length, a
//! body or head that never ends, garbage, extra bytes, silence, a reset mid-message. Every
//! loop a behaviour runs stops when the client goes away (a write fails) or after a bound.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use echo_client::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a hostile server answers each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// HTTP 200 announcing `Content-Length: 99999999999`, then the real body.
    LyingLength,
    /// HTTP 200, chunked, 16-byte chunks forever.
    EndlessChunks,
    /// An HTTP head that never ends (one header value, forever).
    EndlessHead,
    /// HTTP/1.0 200 with no length, then bytes forever without closing.
    EndlessUntilClose,
    /// HTTP 500 announcing a 10 GB body.
    HugeErrorBody,
    /// Bytes that are not HTTP.
    Garbage,
    /// TCP: the echo plus five more bytes, in the same write.
    ExtraBytes,
    /// Reads, never answers.
    Silence,
    /// TCP: half the echo, then a reset.
    ResetMidMessage,
    /// WebSocket: a correct handshake, then a frame announcing 2^62 bytes.
    OversizedFrame,
    /// WebSocket: a 101 with a wrong `Sec-WebSocket-Accept`.
    WrongAcceptKey,
    /// WebSocket: a correct handshake, one message nobody sent, then an honest echo of each.
    Unsolicited,
    /// The same, with the unsolicited message in the same write as the 101: the client reads
    /// both at once, and the message must reach the connection, not be lost with the head.
    UnsolicitedInUpgrade,
    /// WebSocket: a 101 whose head never ends.
    EndlessUpgrade,
}

/// Starts a server answering with `behaviour`; returns its address.
pub async fn serve(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, behaviour));
        }
    });
    addr
}

/// A run of exactly `total` round trips on one connection at a time, with short timeouts.
pub fn config(url: String, total: u64) -> Config {
    Config {
        connections: 1,
        roundtrips: 0,
        total: Some(total),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        timeout: Duration::from_millis(500),
        threads: 1,
        ..Config::new(url)
    }
}

/// Reads one HTTP request (head and `Content-Length` body); `None` when the client left.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(buf[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes `bytes` over and over until the client goes away (or 1 GiB has been offered).
async fn forever(stream: &mut TcpStream, bytes: &[u8]) {
    let mut sent = 0usize;
    while sent < 1 << 30 {
        if stream.write_all(bytes).await.is_err() {
            return;
        }
        sent += bytes.len();
    }
}

async fn answer(mut stream: TcpStream, behaviour: Behaviour) {
    use Behaviour::*;
    match behaviour {
        LyingLength | EndlessChunks | EndlessHead | EndlessUntilClose | HugeErrorBody | Garbage => {
            while let Some(body) = read_request(&mut stream).await {
                let head: &[u8] = match behaviour {
                    LyingLength => b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                    EndlessChunks => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    EndlessHead => b"HTTP/1.1 200 OK\r\nX-Pad: ",
                    EndlessUntilClose => b"HTTP/1.0 200 OK\r\n\r\n",
                    HugeErrorBody => {
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10000000000\r\n\r\n"
                    }
                    _ => b"\x00\xffnot http at all\r\n\r\n",
                };
                if stream.write_all(head).await.is_err() {
                    return;
                }
                match behaviour {
                    LyingLength | HugeErrorBody => {
                        let _ = stream.write_all(&body).await;
                    }
                    EndlessChunks => forever(&mut stream, b"10\r\n0123456789abcdef\r\n").await,
                    EndlessHead => forever(&mut stream, &[b'a'; 1024]).await,
                    EndlessUntilClose => forever(&mut stream, &[b'x'; 4096]).await,
                    _ => {}
                }
            }
        }
        ExtraBytes | ResetMidMessage => {
            let mut buf = [0u8; 65536];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                if behaviour == ExtraBytes {
                    let mut echo = buf[..n].to_vec();
                    echo.extend_from_slice(b"EXTRA");
                    if stream.write_all(&echo).await.is_err() {
                        return;
                    }
                } else {
                    let _ = stream.write_all(&buf[..n / 2]).await;
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
            }
        }
        Silence => {
            let mut buf = [0u8; 4096];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
        EndlessUpgrade => {
            if read_upgrade(&mut stream).await.is_some()
                && stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: ")
                    .await
                    .is_ok()
            {
                forever(&mut stream, &[b'a'; 1024]).await;
            }
        }
        Unsolicited | UnsolicitedInUpgrade => {
            use futures_util::{SinkExt, StreamExt};
            use tokio_tungstenite::tungstenite::Message;
            use tokio_tungstenite::tungstenite::protocol::Role;
            let Some(key) = read_upgrade(&mut stream).await else {
                return;
            };
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let mut response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            if behaviour == UnsolicitedInUpgrade {
                // An unmasked binary frame of 32 bytes, right behind the head.
                response.extend_from_slice(&[0x82, 32]);
                response.extend_from_slice(&[b'u'; 32]);
            }
            if stream.write_all(&response).await.is_err() {
                return;
            }
            let mut ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Server, None)
                    .await;
            if behaviour == Unsolicited
                && ws
                    .send(Message::Binary(vec![b'u'; 32].into()))
                    .await
                    .is_err()
            {
                return;
            }
            while let Some(Ok(message)) = ws.next().await {
                if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err() {
                    return;
                }
            }
        }
        OversizedFrame | WrongAcceptKey => {
            let Some(key) = read_upgrade(&mut stream).await else {
                return;
            };
            let accept = if behaviour == WrongAcceptKey {
                "dGhpcyBpcyBub3QgdGhlIGtleQ==".to_owned()
            } else {
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
            };
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                // A binary frame header announcing 2^62 payload bytes, and no payload.
                let header = [0x82, 0x7f, 0x40, 0, 0, 0, 0, 0, 0, 0];
                if stream.write_all(&header).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads a WebSocket upgrade request; its `Sec-WebSocket-Key`.
async fn read_upgrade(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            });
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// This process's peak resident memory since the last [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Resets the peak resident memory to the current one (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}
