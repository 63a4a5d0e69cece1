//! Raw TCP echo: write the message, read back as many bytes, compare. TCP has no framing but
//! the message's length, so anything that breaks it — bytes beyond the echo, or an echo that
//! differs (it may be shifted by bytes a server added earlier) — ends the connection, counted
//! once, and it is replaced: its stream can no longer be followed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Connection, Transfer, tcp_connect};
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
    stream: TcpStream,
    payload: Vec<u8>,
    /// The echo's bytes, plus [`SPARE`].
    echo: Vec<u8>,
    open: bool,
}

impl Connection for TcpConnection {
    async fn connect(target: &Target, config: &Config) -> Result<Self, Failure> {
        let stream = tcp_connect(target).await?;
        let mut payload = vec![0; config.size];
        message::fill(&mut payload);
        Ok(TcpConnection {
            stream,
            echo: vec![0; config.size + SPARE],
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
            match self.stream.read(&mut self.echo[filled..]).await {
                Ok(0) => {
                    self.open = false;
                    return Err(Failure::ClosedByPeer(format!(
                        "connection closed after {filled} of {expected} echo bytes"
                    )));
                }
                Ok(n) => filled += n,
                Err(err) => {
                    self.open = false;
                    return Err(Failure::read(&err));
                }
            }
        }
        if filled > expected {
            self.open = false;
            return Err(Failure::ProtocolError(format!(
                "{} bytes arrived after the {expected}-byte echo: the stream's framing is lost",
                filled - expected
            )));
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

    fn reusable(&self) -> bool {
        self.open
    }

    async fn close(mut self) {
        // Send FIN; the server answers with its own and the socket closes without a reset.
        let _ = self.stream.shutdown().await;
    }
}
