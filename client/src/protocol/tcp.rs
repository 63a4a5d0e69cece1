//! Raw TCP echo: write the message, read back as many bytes, compare. TCP has no framing but
//! the message's length, so anything that breaks it — bytes beyond the echo, or an echo that
//! differs (it may be shifted by bytes a server added earlier) — ends the connection, counted
//! once, and it is replaced: its stream can no longer be followed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Connection, Opened, Stream, Transfer, dial};
use crate::error::Failure;
use crate::message;
use crate::target::Target;
use echobench_core::config::Config;

/// Room read past the echo in the same `read`: extra bytes a server sends with its echo show
/// up there at no extra system call.
const SPARE: usize = 512;

/// A TCP connection doing echo round trips.
#[derive(Debug)]
pub struct TcpConnection {
    stream: Stream,
    opened: Opened,
    payload: Vec<u8>,
    /// The echo's bytes, plus [`SPARE`] (with `--pipeline K`, K echoes' worth).
    echo: Vec<u8>,
    /// `--pipeline`: the K messages of a batch, back to back.
    batch: Vec<u8>,
    open: bool,
}

impl TcpConnection {
    /// One read into the echo buffer after the `filled` bytes already there, of `expected`
    /// in all (the `what` of the messages). The peer closing, a read error, or bytes beyond
    /// `expected` (the stream's framing is lost) end the connection.
    async fn read_more(
        &mut self,
        filled: usize,
        expected: usize,
        what: &str,
    ) -> Result<usize, Failure> {
        let filled = match self.stream.read(&mut self.echo[filled..]).await {
            Ok(0) => Err(Failure::ClosedByPeer(format!(
                "connection closed after {filled} of {expected} echo bytes"
            ))),
            Ok(n) if filled + n > expected => Err(Failure::ProtocolError(format!(
                "{} bytes arrived after the {expected}-byte {what}: the stream's framing is lost",
                filled + n - expected
            ))),
            Ok(n) => Ok(filled + n),
            Err(err) => Err(Failure::read(&err)),
        };
        if filled.is_err() {
            self.open = false;
        }
        filled
    }
}

impl Connection for TcpConnection {
    async fn connect(target: &Target, config: &Config) -> Result<Self, Failure> {
        let (stream, opened) = dial(target).await?;
        let mut payload = vec![0; config.size];
        message::fill(&mut payload);
        let pipeline = config.pipeline.max(1);
        Ok(TcpConnection {
            stream,
            opened,
            echo: vec![0; config.size * pipeline + SPARE],
            batch: Vec::new(),
            payload,
            open: true,
        })
    }

    async fn round_trip(&mut self, id: u64, _last: bool) -> Result<Transfer, Failure> {
        message::stamp(&mut self.payload, id);
        if let Err(err) = self.stream.write_all(&self.payload).await {
            self.open = false;
            return Err(Failure::SendFailed(err));
        }
        let expected = self.payload.len();
        let mut filled = 0;
        while filled < expected {
            filled = self.read_more(filled, expected, "echo").await?;
        }
        if let Err(mismatch) = message::verify(&self.payload, &self.echo[..expected]) {
            self.open = false;
            return Err(Failure::EchoMismatch(mismatch));
        }
        Ok(Transfer {
            sent: self.payload.len(),
            received: filled,
        })
    }

    async fn round_trips(
        &mut self,
        first_id: u64,
        count: usize,
        _last: bool,
        received: &mut Vec<Instant>,
    ) -> Result<Transfer, Failure> {
        let size = self.payload.len();
        self.batch.clear();
        for i in 0..count as u64 {
            message::stamp(&mut self.payload, first_id.wrapping_add(i));
            self.batch.extend_from_slice(&self.payload);
        }
        if let Err(err) = self.stream.write_all(&self.batch).await {
            self.open = false;
            return Err(Failure::SendFailed(err));
        }
        let expected = self.batch.len();
        if self.echo.len() < expected + SPARE {
            self.echo.resize(expected + SPARE, 0);
        }
        let (mut filled, mut verified) = (0, 0);
        while verified < count {
            filled = self.read_more(filled, expected, "echoes").await?;
            let now = Instant::now();
            while verified < count && filled >= (verified + 1) * size {
                let at = verified * size..(verified + 1) * size;
                if let Err(mismatch) = message::verify(&self.batch[at.clone()], &self.echo[at]) {
                    self.open = false;
                    return Err(Failure::EchoMismatch(mismatch));
                }
                received.push(now);
                verified += 1;
            }
        }
        Ok(Transfer {
            sent: expected,
            received: filled,
        })
    }

    fn reusable(&self) -> bool {
        self.open
    }

    fn opened(&self) -> Opened {
        self.opened
    }

    async fn close(mut self) {
        // Send FIN; the server answers with its own and the socket closes without a reset.
        let _ = self.stream.shutdown().await;
    }
}
