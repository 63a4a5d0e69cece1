//! Helpers shared by the integration tests: deterministic payloads, a raw HTTP/1.1 client that
//! shows exactly what went over the wire, and a WebSocket connect helper.
// Test helpers fail the test by panicking, like assertions do; not every test uses every helper.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test step is bounded: a stuck server fails the test instead of hanging it.
pub const STEP: Duration = Duration::from_secs(10);

/// The payload sizes every echo test runs: the WebSocket length-encoding edges (125/126/127,
/// 65535/65536), empty, one byte and 1 MiB.
pub const SIZES: [usize; 8] = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

/// A deterministic ASCII payload (valid as WebSocket text) whose bytes depend on `seed`.
pub fn payload(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| b'a' + ((i + usize::from(seed)) % 26) as u8)
        .collect()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connection that sends raw bytes and parses responses, keeping leftover bytes between
/// responses so keep-alive and 100-continue can be tested.
pub struct RawHttp {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawHttp {
    pub async fn connect(addr: SocketAddr) -> RawHttp {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        RawHttp {
            stream,
            buffer: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write failed");
    }

    /// Reads one response. A response to HEAD or a 1xx/204/304 has no body.
    pub async fn response(&mut self) -> HttpResponse {
        tokio::time::timeout(STEP, self.read_response())
            .await
            .expect("timed out waiting for a response")
    }

    /// Reads until the peer closes; true if it did so without sending anything more.
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(STEP, self.stream.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => rest.is_empty() && self.buffer.is_empty(),
            Ok(Err(err)) => err.kind() == std::io::ErrorKind::ConnectionReset,
            Err(_) => false,
        }
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = vec![0u8; 65536];
        let n = self.stream.read(&mut chunk).await.expect("read failed");
        self.buffer.extend_from_slice(&chunk[..n]);
        n
    }

    async fn read_response(&mut self) -> HttpResponse {
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buffer).expect("malformed response head") {
                httparse::Status::Complete(len) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (parsed.code.unwrap(), headers, len);
                }
                httparse::Status::Partial => {
                    assert!(self.fill().await > 0, "connection closed before a response");
                }
            }
        };
        self.buffer.drain(..head_len);
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return response;
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked().await;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("bad content-length");
            while self.buffer.len() < len {
                assert!(self.fill().await > 0, "connection closed inside a body");
            }
            response.body = self.buffer.drain(..len).collect();
        } else {
            while self.fill().await > 0 {}
            response.body = std::mem::take(&mut self.buffer);
        }
        response
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                    break pos;
                }
                assert!(self.fill().await > 0, "closed inside chunked body");
            };
            let size_line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .expect("bad chunk size");
            self.buffer.drain(..line_end + 2);
            while self.buffer.len() < size + 2 {
                assert!(self.fill().await > 0, "closed inside a chunk");
            }
            body.extend(self.buffer.drain(..size));
            self.buffer.drain(..2);
            if size == 0 {
                return body;
            }
        }
    }
}

/// A POST request with a Content-Length body.
pub fn post(path: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: test\r\n").into_bytes();
    if let Some(ct) = content_type {
        request.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// One request, one response, on a fresh connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut conn = RawHttp::connect(addr).await;
    conn.send(request).await;
    conn.response().await
}

/// A WebSocket client connection as tokio-tungstenite returns it.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`.
pub async fn ws_connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("websocket connect timed out")
        .expect("websocket connect failed");
    ws
}

/// The next message from the server, bounded by [`STEP`].
pub async fn ws_next(ws: &mut Ws) -> Option<tokio_tungstenite::tungstenite::Message> {
    use futures_util::StreamExt;
    match tokio::time::timeout(STEP, ws.next())
        .await
        .expect("timed out waiting for the server")
    {
        None => None,
        Some(Ok(message)) => Some(message),
        Some(Err(err)) => panic!("websocket error from the server: {err}"),
    }
}

/// One client connection of whatever protocol a fixture speaks, with one `echo` call, so fault
/// and concurrency tests can be written once for every implementation.
pub enum Client {
    Http(RawHttp),
    Ws(Box<Ws>),
    Tcp(TcpStream),
}

/// What one echo attempt produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Echo {
    /// The echoed bytes (HTTP: the body; WebSocket: the message payload).
    Bytes(Vec<u8>),
    /// The server closed: WebSocket close code, or `None` for a plain TCP close.
    Closed(Option<u16>),
}

impl Client {
    pub async fn connect(imp: echo_servers::Impl, addr: SocketAddr) -> Client {
        use echo_servers::Protocol;
        match imp.protocol() {
            Protocol::Http => Client::Http(RawHttp::connect(addr).await),
            Protocol::WebSocket => Client::Ws(Box::new(ws_connect(&imp.url(addr, false)).await)),
            Protocol::Tcp => Client::Tcp(
                tokio::time::timeout(STEP, TcpStream::connect(addr))
                    .await
                    .unwrap()
                    .unwrap(),
            ),
        }
    }

    /// Sends `payload` (non-empty for TCP) and returns the echo; for HTTP the response must be
    /// 200, and its `Connection: close` is reported by [`Client::http_closing`].
    pub async fn echo(&mut self, payload: &[u8]) -> Echo {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        match self {
            Client::Http(conn) => {
                conn.send(&post("/echo", None, payload)).await;
                let response = conn.response().await;
                assert_eq!(response.status, 200);
                if response.header("connection") == Some("close") {
                    assert!(
                        conn.closed().await,
                        "Connection: close but the server kept it open"
                    );
                }
                Echo::Bytes(response.body)
            }
            Client::Ws(ws) => {
                ws.send(Message::binary(payload.to_vec())).await.unwrap();
                loop {
                    match ws_next(ws).await {
                        Some(Message::Binary(bytes)) => return Echo::Bytes(bytes.to_vec()),
                        Some(Message::Close(frame)) => {
                            return Echo::Closed(frame.map(|f| u16::from(f.code)));
                        }
                        Some(_) => {}
                        None => return Echo::Closed(None),
                    }
                }
            }
            Client::Tcp(stream) => {
                stream.write_all(payload).await.unwrap();
                let mut echo = vec![0u8; payload.len()];
                let mut filled = 0;
                while filled < echo.len() {
                    let n = tokio::time::timeout(STEP, stream.read(&mut echo[filled..]))
                        .await
                        .expect("timed out waiting for the echo")
                        .unwrap_or(0);
                    if n == 0 {
                        return Echo::Closed(None);
                    }
                    filled += n;
                }
                Echo::Bytes(echo)
            }
        }
    }

    /// After a closing echo: true once the server has closed the connection.
    pub async fn server_closed(&mut self) -> bool {
        match self {
            Client::Http(conn) => conn.closed().await,
            Client::Ws(ws) => ws_next(ws).await.is_none(),
            Client::Tcp(stream) => {
                let mut rest = Vec::new();
                matches!(
                    tokio::time::timeout(STEP, stream.read_to_end(&mut rest)).await,
                    Ok(Ok(0))
                )
            }
        }
    }
}
