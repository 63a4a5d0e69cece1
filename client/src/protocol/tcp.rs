//! Raw TCP echo: write the message, read back exactly as many bytes, compare.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Connection, Transfer, tcp_connect};
use crate::error::Failure;
use crate::message;
use crate::target::Target;
use echobench_core::config::Config;

/// A TCP connection doing echo round trips.
#[derive(Debug)]
pub struct TcpConnection {
    stream: TcpStream,
    payload: Vec<u8>,
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
            echo: vec![0; config.size],
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
        let mut filled = 0;
        while filled < self.echo.len() {
            match self.stream.read(&mut self.echo[filled..]).await {
                Ok(0) => {
                    self.open = false;
                    return Err(Failure::ClosedByPeer(format!(
                        "connection closed after {filled} of {} echo bytes",
                        self.echo.len()
                    )));
                }
                Ok(n) => filled += n,
                Err(err) => {
                    self.open = false;
                    return Err(Failure::read(&err));
                }
            }
        }
        message::verify(&self.payload, &self.echo).map_err(Failure::EchoMismatch)?;
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
