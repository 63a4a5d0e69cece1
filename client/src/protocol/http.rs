//! HTTP/1.1 echo over keep-alive connections, written directly on the socket: the request is
//! built once per connection and only its id bytes change, the response head is parsed in
//! place with httparse, and the body is compared where it was read. A general HTTP client
//! would allocate header maps and body buffers per request; a load generator that wants to
//! stay cheaper than the server it measures cannot.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Connection, Transfer, tcp_connect};
use crate::error::Failure;
use crate::message;
use crate::target::Target;
use echobench_core::config::{Config, Payload};

/// Response heads larger than this are refused as a protocol error.
const MAX_HEAD: usize = 64 * 1024;
/// Header slots for httparse.
const MAX_HEADERS: usize = 64;
/// The largest body read from an error response (an echo is never longer than its message).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The longest chunk-size line (`1a2b;ext=...\r\n`) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 1024;

/// A keep-alive HTTP/1.1 connection doing `POST` echo round trips.
#[derive(Debug)]
pub struct HttpConnection {
    stream: TcpStream,
    /// The request to send; the id is stamped into its body in place.
    request: Vec<u8>,
    /// Where the id is stamped in `request` (the body start, or the JSON id field).
    id_offset: usize,
    /// The body's length in bytes (the same for both requests: they differ only in their
    /// heads).
    body_len: usize,
    /// The same request with `Connection: close`, for the connection's last round trip.
    closing: Vec<u8>,
    /// Where the id is stamped in `closing`.
    closing_id_offset: usize,
    /// Read buffer, reused for every response.
    buffer: Vec<u8>,
    /// What the bodies contain.
    payload: Payload,
    /// No further request may use this connection: the server said it closes, or a response
    /// could not be followed to its end (framing lost), so the next response would be read
    /// from the middle of this one.
    spent: bool,
}

impl HttpConnection {
    /// A request with a body of `size` bytes; returns it and where its id is stamped.
    fn build(target: &Target, size: usize, payload: Payload, close: bool) -> (Vec<u8>, usize) {
        let content_type = match payload {
            Payload::Raw => "application/octet-stream",
            Payload::Json => "application/json",
        };
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n{}\r\n",
            target.path,
            target.host,
            if close { "Connection: close\r\n" } else { "" },
        )
        .into_bytes();
        let body_at = request.len();
        request.resize(body_at + size, 0);
        match payload {
            Payload::Raw => {
                message::fill(&mut request[body_at..]);
                (request, body_at)
            }
            Payload::Json => {
                message::fill_json(&mut request[body_at..]);
                (request, body_at + message::JSON_ID_AT)
            }
        }
    }

    /// The id bytes of a request built by [`HttpConnection::build`].
    fn id_range(&self, at: usize) -> std::ops::Range<usize> {
        match self.payload {
            Payload::Raw => at..at + self.body_len,
            Payload::Json => at..at + message::ID_DIGITS,
        }
    }

    async fn read_more(&mut self, filled: usize) -> Result<usize, Failure> {
        if filled == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        match self.stream.read(&mut self.buffer[filled..]).await {
            Ok(0) => Err(Failure::ClosedByPeer(
                "connection closed before the response was complete".to_owned(),
            )),
            Ok(n) => Ok(filled + n),
            Err(err) => Err(Failure::read(&err)),
        }
    }

    /// The body bytes of the request last sent (the keep-alive or the closing one).
    fn sent_body(&self, closing: bool) -> &[u8] {
        let request = if closing {
            &self.closing
        } else {
            &self.request
        };
        &request[request.len() - self.body_len..]
    }

    /// Reads one complete response (skipping interim 1xx ones) and judges it against the
    /// request's body; returns the bytes read.
    async fn response(&mut self, closing: bool) -> Result<usize, Failure> {
        let mut filled = 0;
        let mut interim = 0;
        loop {
            match parse_head(&self.buffer[..filled])? {
                None if filled >= MAX_HEAD => {
                    return Err(Failure::ProtocolError(format!(
                        "response head larger than {MAX_HEAD} bytes"
                    )));
                }
                None => filled = self.read_more(filled).await?,
                Some(head) if (100..200).contains(&head.status) => {
                    // An unsolicited interim response (we never send Expect): skip it.
                    self.buffer.copy_within(head.len..filled, 0);
                    filled -= head.len;
                    interim += head.len;
                }
                Some(head) => return Ok(interim + self.body(head, filled, closing).await?),
            }
        }
    }

    /// The most body bytes read for a response of `status`: an echo (200) is never longer
    /// than its message, an error page gets [`MAX_ERROR_BODY`]. Nothing the server announces
    /// sizes a buffer beyond this.
    fn body_limit(&self, status: u16) -> usize {
        if status == 200 {
            self.body_len
        } else {
            MAX_ERROR_BODY.max(self.body_len)
        }
    }

    /// The failure for a body that would pass [`Self::body_limit`]: for a 200 the echo is
    /// wrong (it has more bytes than the message), otherwise the status is the error. Either
    /// way the rest of the body is not read, so the connection cannot be reused.
    fn oversized(&mut self, status: u16, at_least: usize) -> Failure {
        self.spent = true;
        if status == 200 {
            Failure::EchoMismatch(message::Mismatch {
                sent: self.body_len,
                echoed: at_least,
                at: None,
            })
        } else {
            Failure::HttpStatus(status)
        }
    }

    /// Reads the body `head` announces, with `filled` bytes already buffered, and judges it.
    async fn body(
        &mut self,
        head: Head,
        mut filled: usize,
        closing: bool,
    ) -> Result<usize, Failure> {
        self.spent |= head.close;
        let limit = self.body_limit(head.status);
        match head.body {
            BodyLength::Fixed(len) if len > limit => Err(self.oversized(head.status, len)),
            BodyLength::Fixed(len) => {
                let end = head.len + len;
                if self.buffer.len() < end {
                    self.buffer.resize(end, 0);
                }
                while filled < end {
                    filled = self.read_more(filled).await?;
                }
                if filled > end {
                    self.spent = true;
                    return Err(Failure::ProtocolError(format!(
                        "{} unexpected bytes after the response",
                        filled - end
                    )));
                }
                judge(
                    head.status,
                    self.sent_body(closing),
                    &self.buffer[head.len..end],
                )?;
                Ok(filled)
            }
            BodyLength::Chunked => {
                let (received, body) = self
                    .read_chunked(head.len, filled, head.status, limit)
                    .await
                    .inspect_err(|_| self.spent = true)?;
                judge(head.status, self.sent_body(closing), &body)?;
                Ok(received)
            }
            BodyLength::UntilClose => {
                // The body ends when the server closes: read at most one byte past the limit.
                self.spent = true;
                let end = head.len + limit + 1;
                if self.buffer.len() < end {
                    self.buffer.resize(end, 0);
                }
                while filled < end {
                    match self.stream.read(&mut self.buffer[filled..end]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(err) => return Err(Failure::read(&err)),
                    }
                }
                if filled - head.len > limit {
                    return Err(self.oversized(head.status, filled - head.len));
                }
                judge(
                    head.status,
                    self.sent_body(closing),
                    &self.buffer[head.len..filled],
                )?;
                Ok(filled)
            }
        }
    }

    /// Decodes a chunked body (the rare path: our servers send Content-Length) of at most
    /// `limit` bytes. Returns the bytes consumed and the decoded body. Every part a server
    /// controls is bounded: a chunk-size line to [`MAX_CHUNK_LINE`], the body to `limit`, the
    /// trailers to [`MAX_HEAD`].
    async fn read_chunked(
        &mut self,
        mut at: usize,
        mut filled: usize,
        status: u16,
        limit: usize,
    ) -> Result<(usize, Vec<u8>), Failure> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = self.buffer[at..filled]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                {
                    break at + pos;
                }
                if filled - at > MAX_CHUNK_LINE {
                    return Err(Failure::ProtocolError(format!(
                        "chunk-size line longer than {MAX_CHUNK_LINE} bytes"
                    )));
                }
                filled = self.read_more(filled).await?;
            };
            let line = std::str::from_utf8(&self.buffer[at..line_end]).unwrap_or("");
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Failure::ProtocolError(format!("bad chunk size line {line:?}")))?;
            if size > limit - body.len() {
                return Err(self.oversized(status, body.len().saturating_add(size)));
            }
            at = line_end + 2;
            if size == 0 {
                // Optional trailers, then an empty line.
                let trailers = at;
                loop {
                    match self.buffer[at..filled]
                        .windows(2)
                        .position(|w| w == b"\r\n")
                    {
                        Some(0) => return Ok((at + 2, body)),
                        Some(pos) => at += pos + 2,
                        None if filled - trailers > MAX_HEAD => {
                            return Err(Failure::ProtocolError(format!(
                                "chunked trailers larger than {MAX_HEAD} bytes"
                            )));
                        }
                        None => filled = self.read_more(filled).await?,
                    }
                }
            }
            while filled < at + size + 2 {
                filled = self.read_more(filled).await?;
            }
            body.extend_from_slice(&self.buffer[at..at + size]);
            at += size + 2;
        }
    }
}

/// A 200 whose body is the message, or the failure it is.
fn judge(status: u16, sent: &[u8], body: &[u8]) -> Result<(), Failure> {
    if status != 200 {
        return Err(Failure::HttpStatus(status));
    }
    message::verify(sent, body).map_err(Failure::EchoMismatch)
}

impl Connection for HttpConnection {
    async fn connect(target: &Target, config: &Config) -> Result<Self, Failure> {
        let stream = tcp_connect(target).await?;
        let (request, id_offset) =
            HttpConnection::build(target, config.size, config.payload, false);
        let (closing, closing_id_offset) =
            HttpConnection::build(target, config.size, config.payload, true);
        Ok(HttpConnection {
            stream,
            request,
            id_offset,
            body_len: config.size,
            closing,
            closing_id_offset,
            payload: config.payload,
            buffer: vec![0; (config.size + 1024).clamp(16 * 1024, 1 << 20)],
            spent: false,
        })
    }

    async fn round_trip(&mut self, id: u64, last: bool) -> Result<Transfer, Failure> {
        let at = if last {
            self.closing_id_offset
        } else {
            self.id_offset
        };
        let range = self.id_range(at);
        let request = if last {
            &mut self.closing
        } else {
            &mut self.request
        };
        message::stamp(&mut request[range], id);
        let sent = request.len();
        if let Err(err) = self.stream.write_all(request).await {
            return Err(Failure::SendFailed(err));
        }
        let received = self.response(last).await?;
        Ok(Transfer { sent, received })
    }

    fn reusable(&self) -> bool {
        !self.spent
    }

    async fn close(self) {
        // HTTP/1.1 has no goodbye: the last request asked for `Connection: close`, or the
        // connection is simply dropped.
        drop(self.stream);
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLength {
    Fixed(usize),
    Chunked,
    UntilClose,
}

/// The parts of a response head the client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Length of the head in bytes.
    len: usize,
    body: BodyLength,
    /// The server will close the connection after this response.
    close: bool,
}

/// Parses a response head; `Ok(None)` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => {
            return Err(Failure::ProtocolError(format!(
                "malformed response head: {err}"
            )));
        }
    };
    let status = response.code.unwrap_or(0);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| Failure::ProtocolError("invalid Content-Length".to_owned()))?;
            if content_length.is_some_and(|known| known != value) {
                return Err(Failure::ProtocolError(
                    "conflicting Content-Length headers".to_owned(),
                ));
            }
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= has_token(header.value, b"chunked");
        } else if header.name.eq_ignore_ascii_case("connection") {
            if has_token(header.value, b"close") {
                close = true;
            } else if has_token(header.value, b"keep-alive") {
                close = false;
            }
        }
    }
    let body = if chunked {
        BodyLength::Chunked
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        BodyLength::Fixed(0)
    } else if let Some(len) = content_length {
        BodyLength::Fixed(len)
    } else {
        BodyLength::UntilClose
    };
    Ok(Some(Head {
        status,
        len,
        body,
        close,
    }))
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Response heads parse to status, length, delimiting and connection intent.
    #[test]
    fn heads() {
        let cases: [(&[u8], Option<Head>); 6] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                Some(Head {
                    status: 200,
                    len: 38,
                    body: BodyLength::Fixed(5),
                    close: false,
                }),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Len", None),
            (
                b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
                Some(Head {
                    status: 500,
                    len: 59,
                    body: BodyLength::Fixed(0),
                    close: true,
                }),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Some(Head {
                    status: 200,
                    len: 53,
                    body: BodyLength::Chunked,
                    close: false,
                }),
            ),
            (
                b"HTTP/1.0 200 OK\r\n\r\n",
                Some(Head {
                    status: 200,
                    len: 19,
                    body: BodyLength::UntilClose,
                    close: true,
                }),
            ),
            (
                b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
                Some(Head {
                    status: 204,
                    len: 51,
                    body: BodyLength::Fixed(0),
                    close: false,
                }),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                parse_head(bytes).unwrap(),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Malformed heads and conflicting lengths are protocol errors.
    #[test]
    fn bad_heads() {
        for bytes in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bytes), Err(Failure::ProtocolError(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
