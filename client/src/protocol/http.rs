//! HTTP/1.1 echo over keep-alive connections, written directly on the socket: the request is
//! built once per connection and only its id bytes change, the response head is parsed in
//! place with httparse, and the body is compared where it was read. A general HTTP client
//! would allocate header maps and body buffers per request; a load generator that wants to
//! stay cheaper than the server it measures cannot.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Connection, Opened, Stream, Transfer, dial};
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
    stream: Stream,
    opened: Opened,
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
    /// `--pipeline`: bytes at the start of `buffer` that belong to the next response, read
    /// along with the one before it.
    carry: usize,
    /// `--pipeline`: the batch of requests, back to back.
    batch: Vec<u8>,
    /// No further request may use this connection: the server said it closes, or a response
    /// could not be followed to its end (framing lost), so the next response would be read
    /// from the middle of this one.
    spent: bool,
    /// The last response head, to recognise the next one without parsing it.
    heads: HeadCache,
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

    /// Stamps `id` into the keep-alive request, or the closing one.
    fn stamp(&mut self, id: u64, closing: bool) {
        let at = if closing {
            self.closing_id_offset
        } else {
            self.id_offset
        };
        let range = self.id_range(at);
        let request = if closing {
            &mut self.closing
        } else {
            &mut self.request
        };
        message::stamp(&mut request[range], id);
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
    /// request's body; returns the bytes read. `more`: further pipelined responses follow,
    /// so bytes past this one are theirs (kept in `carry`), not an error.
    async fn response(&mut self, closing: bool, more: bool) -> Result<usize, Failure> {
        let mut filled = std::mem::take(&mut self.carry);
        let mut interim = 0;
        loop {
            match self.heads.parse(&self.buffer[..filled])? {
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
                Some(head) => return Ok(interim + self.body(head, filled, closing, more).await?),
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
        more: bool,
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
                if filled > end && !more {
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
                if filled > end {
                    self.buffer.copy_within(end..filled, 0);
                    self.carry = filled - end;
                }
                Ok(end)
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
        let (stream, opened) = dial(target).await?;
        let (request, id_offset) =
            HttpConnection::build(target, config.size, config.payload, false);
        let (closing, closing_id_offset) =
            HttpConnection::build(target, config.size, config.payload, true);
        Ok(HttpConnection {
            stream,
            opened,
            request,
            id_offset,
            body_len: config.size,
            closing,
            closing_id_offset,
            payload: config.payload,
            buffer: vec![0; (config.size + 1024).clamp(16 * 1024, 1 << 20)],
            carry: 0,
            batch: Vec::new(),
            spent: false,
            heads: HeadCache::default(),
        })
    }

    async fn round_trip(&mut self, id: u64, last: bool) -> Result<Transfer, Failure> {
        self.stamp(id, last);
        let request = if last { &self.closing } else { &self.request };
        let sent = request.len();
        if let Err(err) = self.stream.write_all(request).await {
            return Err(Failure::SendFailed(err));
        }
        let received = self.response(last, false).await?;
        Ok(Transfer { sent, received })
    }

    async fn round_trips(
        &mut self,
        first_id: u64,
        count: usize,
        last: bool,
        received: &mut Vec<Instant>,
    ) -> Result<Transfer, Failure> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        for i in 0..count {
            let closing = last && i + 1 == count;
            self.stamp(first_id.wrapping_add(i as u64), closing);
            batch.extend_from_slice(if closing {
                &self.closing
            } else {
                &self.request
            });
        }
        let written = self.stream.write_all(&batch).await;
        let sent = batch.len();
        self.batch = batch;
        if let Err(err) = written {
            return Err(Failure::SendFailed(err));
        }
        let mut bytes = 0;
        self.carry = 0;
        for i in 0..count {
            let closing = last && i + 1 == count;
            // Judged against its own request's body: stamp that id back before reading.
            self.stamp(first_id.wrapping_add(i as u64), closing);
            bytes += self.response(closing, i + 1 < count).await?;
            received.push(Instant::now());
            if self.spent && i + 1 < count {
                return Err(Failure::ClosedByPeer(format!(
                    "the server closed after {} of {count} pipelined responses",
                    i + 1
                )));
            }
        }
        Ok(Transfer {
            sent,
            received: bytes,
        })
    }

    fn reusable(&self) -> bool {
        !self.spent
    }

    fn opened(&self) -> Opened {
        self.opened
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

/// The last response head a connection parsed, byte for byte, and what it said. A server
/// answers every echo with the same head (hyper's changes once a second, with its `Date`), and
/// a response that starts with exactly those bytes has exactly that head: httparse stops at the
/// first empty line, so what follows cannot change the result. Recognising it is one `memcmp`
/// of ~100 bytes where parsing it (64 header slots cleared, httparse, the headers matched) was
/// 2.7% of the client's samples in a closed-loop run against hyper (perf, 2026-12-04).
#[derive(Debug, Default)]
struct HeadCache {
    bytes: Vec<u8>,
    head: Option<Head>,
}

impl HeadCache {
    /// The longest head remembered: a larger one is parsed every time, so that no server
    /// can make a connection hold more than this for it.
    const MAX: usize = 512;

    /// The same as [`parse_head`], without parsing a head seen last time.
    fn parse(&mut self, buf: &[u8]) -> Result<Option<Head>, Failure> {
        if let Some(head) = self.head
            && buf.starts_with(&self.bytes)
        {
            return Ok(Some(head));
        }
        let parsed = parse_head(buf)?;
        // Only a complete head replaces the one remembered: a head still arriving, or one
        // too long, leaves it for the next response.
        if let Some(head) = parsed
            && head.len <= Self::MAX
        {
            self.bytes.clear();
            self.bytes.extend_from_slice(&buf[..head.len]);
            self.head = Some(head);
        }
        Ok(parsed)
    }
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
pub(super) fn has_token(value: &[u8], token: &[u8]) -> bool {
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

    /// A head recognised from the last one is the head parsing gives, whatever came before:
    /// the same head again, another one, a head cut short, a malformed one, one too long to
    /// remember.
    #[test]
    fn the_head_cache_answers_what_parsing_answers() {
        let long = format!(
            "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 5\r\n\r\nhello",
            "p".repeat(600)
        );
        let heads: [&[u8]; 7] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
            long.as_bytes(),
        ];
        proptest::proptest!(|(order in proptest::collection::vec(0..heads.len(), 1..40))| {
            let mut cache = HeadCache::default();
            for &i in &order {
                let bytes = heads[i];
                let expected = parse_head(bytes).map_err(|failure| failure.to_string());
                let got = cache.parse(bytes).map_err(|failure| failure.to_string());
                proptest::prop_assert_eq!(got, expected, "{}", String::from_utf8_lossy(bytes));
                proptest::prop_assert!(cache.bytes.len() <= HeadCache::MAX);
            }
        });
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
