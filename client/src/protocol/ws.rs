//! WebSocket echo on tokio-tungstenite: one masked message out, the same message (type and
//! bytes) back. Pings from the server are answered by the library; a close from the server in
//! place of an echo is `closed_by_peer`.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::upgrade::upgrade;
use super::{Connection, Opened, Stream, Transfer, dial};
use crate::error::Failure;
use crate::message;
use crate::target::Target;
use echobench_core::config::{Config, WsMode};

/// A WebSocket connection doing echo round trips.
#[derive(Debug)]
pub struct WsConnection {
    ws: WebSocketStream<Stream>,
    opened: Opened,
    payload: Vec<u8>,
    mode: WsMode,
    open: bool,
}

/// Size on the wire of a frame carrying `len` payload bytes: 2 header bytes, 2 or 8 more for
/// lengths over 125 or 65535, and a 4-byte mask on client frames.
pub fn frame_len(len: usize, masked: bool) -> usize {
    let extended = match len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + extended + if masked { 4 } else { 0 } + len
}

/// The read buffer each connection preallocates: room for the echo frames in flight (one, or
/// `--pipeline` of them), at least [`MIN_READ_BUFFER`], at most tungstenite's default of
/// 128 KiB. tungstenite zero-fills the whole buffer before each read, so its size is memory
/// traffic per read (the default made the client spend 70% more CPU per round trip at a few
/// hundred connections than at 64), and it is resident for every open connection, idle or not.
pub fn read_buffer(size: usize, pipeline: usize) -> usize {
    (size + 14)
        .saturating_mul(pipeline.max(1))
        .clamp(MIN_READ_BUFFER, 128 * 1024)
}

/// The smallest read buffer: a control frame from the server (at most 127 bytes) or a small
/// echo in one read, and little to keep for an idle connection (BENCHMARKS.md, "Memory per
/// WebSocket connection").
pub const MIN_READ_BUFFER: usize = 256;

fn read_failure(err: WsError) -> Failure {
    match err {
        WsError::Io(err) => Failure::read(&err),
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            Failure::ClosedByPeer("websocket closed".to_owned())
        }
        WsError::Protocol(err) => Failure::ProtocolError(err.to_string()),
        WsError::Utf8(err) => {
            Failure::ProtocolError(format!("invalid UTF-8 in a text echo: {err}"))
        }
        WsError::Capacity(err) => Failure::ProtocolError(err.to_string()),
        other => Failure::ProtocolError(other.to_string()),
    }
}

impl Connection for WsConnection {
    async fn connect(target: &Target, config: &Config) -> Result<Self, Failure> {
        let (stream, mut opened) = dial(target).await?;
        let began = Instant::now();
        let limit = (config.size * 2).max(1 << 20);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(read_buffer(config.size, config.pipeline))
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        let ws = upgrade(target, stream, ws_config).await?;
        opened.upgrade = Some(began.elapsed());
        let mut payload = vec![0; config.size];
        message::fill(&mut payload);
        Ok(WsConnection {
            ws,
            opened,
            payload,
            mode: config.ws_mode,
            open: true,
        })
    }

    async fn round_trip(&mut self, id: u64, _last: bool) -> Result<Transfer, Failure> {
        message::stamp(&mut self.payload, id);
        let outgoing = self.outgoing()?;
        if let Err(err) = self.ws.send(outgoing).await {
            self.open = false;
            return Err(send_failure(err));
        }
        let sent = frame_len(self.payload.len(), true);
        let received = self.echo().await?;
        Ok(Transfer { sent, received })
    }

    async fn round_trips(
        &mut self,
        first_id: u64,
        count: usize,
        _last: bool,
        received: &mut Vec<Instant>,
    ) -> Result<Transfer, Failure> {
        for i in 0..count as u64 {
            message::stamp(&mut self.payload, first_id.wrapping_add(i));
            let outgoing = self.outgoing()?;
            // Queued without a flush: the batch leaves in as few writes as the buffer allows.
            if let Err(err) = self.ws.feed(outgoing).await {
                self.open = false;
                return Err(send_failure(err));
            }
        }
        if let Err(err) = self.ws.flush().await {
            self.open = false;
            return Err(send_failure(err));
        }
        let mut bytes = 0;
        for i in 0..count as u64 {
            // Each echo is checked against its own message, in order: a stray or missing
            // message shows as a mismatch instead of shifting every echo after it.
            message::stamp(&mut self.payload, first_id.wrapping_add(i));
            bytes += self.echo().await?;
            received.push(Instant::now());
        }
        Ok(Transfer {
            sent: frame_len(self.payload.len(), true) * count,
            received: bytes,
        })
    }

    fn reusable(&self) -> bool {
        self.open
    }

    fn opened(&self) -> Opened {
        self.opened
    }

    async fn close(mut self) {
        if self.open && self.ws.close(None).await.is_ok() {
            // Wait for the server's close reply; the stream ends after it.
            while let Some(Ok(_)) = self.ws.next().await {}
        }
    }
}

fn send_failure(err: WsError) -> Failure {
    match err {
        WsError::Io(err) => Failure::SendFailed(err),
        other => read_failure(other),
    }
}

impl WsConnection {
    /// The payload as the message type of `--ws-mode`.
    fn outgoing(&self) -> Result<Message, Failure> {
        let bytes = Bytes::copy_from_slice(&self.payload);
        Ok(match self.mode {
            WsMode::Binary => Message::Binary(bytes),
            // Payloads are ASCII, so this cannot fail; if it ever did, say so instead of panicking.
            WsMode::Text => {
                Message::Text(Utf8Bytes::try_from(bytes).map_err(|err| {
                    Failure::ProtocolError(format!("message is not UTF-8: {err}"))
                })?)
            }
        })
    }

    /// Reads the next message and verifies it against the payload as stamped now; returns its
    /// size on the wire.
    async fn echo(&mut self) -> Result<usize, Failure> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(ref data))) => {
                    self.check(data, "binary")?;
                    return Ok(frame_len(data.len(), false));
                }
                Some(Ok(Message::Text(ref text))) => {
                    self.check(text.as_bytes(), "text")?;
                    return Ok(frame_len(text.len(), false));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.open = false;
                    let detail = match frame {
                        Some(frame) => format!(
                            "close {} {:?}",
                            u16::from(frame.code),
                            frame.reason.as_str()
                        ),
                        None => "close without a code".to_owned(),
                    };
                    return Err(Failure::ClosedByPeer(detail));
                }
                // Pings and pongs: the library answers pings; wait on for the echo.
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    self.open = false;
                    return Err(read_failure(err));
                }
                None => {
                    self.open = false;
                    return Err(Failure::ClosedByPeer("connection ended".to_owned()));
                }
            }
        }
    }

    fn check(&mut self, echo: &[u8], kind: &'static str) -> Result<(), Failure> {
        let sent_kind = match self.mode {
            WsMode::Binary => "binary",
            WsMode::Text => "text",
        };
        if kind != sent_kind {
            return Err(Failure::WrongMessageType {
                sent: sent_kind,
                echoed: kind,
            });
        }
        message::verify(&self.payload, echo).map_err(|mismatch| {
            // A different id means this echo answers another message (an unsolicited one,
            // or one answered twice): every echo after it would be out of step too, so the
            // connection is replaced instead of counting a mismatch per round trip.
            if mismatch.at.is_none_or(|at| at < message::ID_DIGITS) {
                self.open = false;
            }
            Failure::EchoMismatch(mismatch)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read buffer fits the echo frames in flight, between 256 bytes and tungstenite's
    /// 128 KiB default.
    #[test]
    fn read_buffer_sizes() {
        let cases = [
            (0, 1, 256),
            (32, 1, 256),
            (242, 1, 256),
            (243, 1, 257),
            (4082, 1, 4096),
            (4, 16, 288),
            (32, 256, 11776),
            (65536, 1, 65550),
            (65536, 4, 128 * 1024),
            (1 << 20, 1, 128 * 1024),
        ];
        for (size, pipeline, buffer) in cases {
            assert_eq!(
                read_buffer(size, pipeline),
                buffer,
                "size {size} x {pipeline}"
            );
        }
    }

    /// Frame sizes follow RFC 6455's length encoding.
    #[test]
    fn frame_lengths() {
        let cases = [
            (0, true, 6),
            (125, true, 131),
            (126, true, 134),
            (65535, false, 65539),
            (65536, false, 65546),
            (32, false, 34),
        ];
        for (len, masked, wire) in cases {
            assert_eq!(frame_len(len, masked), wire, "{len} masked={masked}");
        }
    }
}
