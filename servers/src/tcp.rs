//! `tcp`: raw TCP echo on tokio, the floor every protocol is compared against. Bytes are
//! echoed as they arrive, one write per read; there are no messages, so `max_message` does not
//! apply and the faults count reads.
//!
//! With `tcp_relay` (`--broadcast`) it is the broadcast floor instead: every connection sends
//! and receives messages framed as a 4-byte big-endian length and that many bytes (at most
//! `max_message`; a longer one closes the connection), and every message goes to every
//! connection, the sender included, in the order the server received them. There the
//! faults apply to each delivery (`--max-rate N`: at most N deliveries leave the server per
//! second), which gives tests a relay of known capacity.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::acceptor::{self, Accept, Stream};
use crate::broadcast::Hub;
use crate::fault::{self, FaultPlan};
use crate::options::Options;

/// The relay's frame header: the payload's length, big-endian.
pub const FRAME_HEADER: usize = 4;

/// Largest read buffer per connection: large enough that a 64 KiB message takes one read
/// when the kernel has it all.
const READ_BUFFER: usize = 64 * 1024;

/// Read buffer a connection starts with; it doubles (up to [`READ_BUFFER`]) each time a read
/// fills it. A 64 KiB buffer from the start cost 56 KiB of resident memory per connection
/// (5,000 connections at one 32-byte message a second: 280 MiB), most of it never used.
const FIRST_READ_BUFFER: usize = 4 * 1024;

/// Serves TCP echo on `listener` until `shutdown` is cancelled and connections have closed.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, &[])?;
    if options.broadcast.tcp_relay {
        let hub = Arc::new(Hub::new(options.broadcast));
        let relay_hub = Arc::clone(&hub);
        let max_message = options.max_message;
        let faults = Arc::new(FaultPlan::new(options.faults));
        let served = acceptor::run(listener, accept, shutdown, move |stream, peer, token| {
            let hub = Arc::clone(&relay_hub);
            let faults = Arc::clone(&faults);
            async move {
                if let Err(err) = relay(stream, &hub, &faults, max_message, &token).await {
                    tracing::debug!(%peer, %err, "tcp relay connection ended with an error");
                }
            }
        })
        .await;
        hub.log_counts();
        return served;
    }
    let faults = Arc::new(FaultPlan::new(options.faults));
    acceptor::run(listener, accept, shutdown, move |stream, peer, token| {
        let faults = Arc::clone(&faults);
        async move {
            if let Err(err) = echo(stream, &faults, &token).await {
                tracing::debug!(%peer, %err, "tcp connection ended with an error");
            }
        }
    })
    .await
}

async fn echo(
    mut stream: Stream,
    faults: &FaultPlan,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let mut buffer = vec![0u8; FIRST_READ_BUFFER];
    let mut reads: u64 = 0;
    loop {
        let n = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            read = stream.read(&mut buffer) => read?,
        };
        if n == 0 {
            return Ok(());
        }
        reads += 1;
        let filled = n == buffer.len();
        faults.hold().await;
        if faults.next_echo_is_corrupt() {
            let mut chunk = buffer[..n].to_vec();
            fault::corrupt(&mut chunk);
            stream.write_all(&chunk).await?;
        } else {
            stream.write_all(&buffer[..n]).await?;
        }
        if faults.close_now(reads) {
            return Ok(());
        }
        if filled && buffer.len() < READ_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
        }
    }
}

/// One relay connection: frames read from it are published, frames queued for it are written,
/// until it closes, sends a frame over the limit, is disconnected for being too slow, or the
/// server shuts down.
async fn relay(
    stream: Stream,
    hub: &Hub<Bytes>,
    faults: &FaultPlan,
    max_message: usize,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut member = hub.join();
    let read = async {
        while let Some(frame) = read_frame(&mut reader, max_message).await? {
            hub.publish(&frame);
        }
        Ok(())
    };
    let write = async {
        loop {
            let frame = tokio::select! {
                biased;
                () = member.kicked.cancelled() => return Ok(()),
                frame = member.queue.recv() => match frame {
                    Some(frame) => frame,
                    None => return Ok(()),
                },
            };
            // A peer that does not read blocks the write; a disconnect must not wait for it.
            tokio::select! {
                biased;
                () = member.kicked.cancelled() => return Ok(()),
                written = async {
                    faults.hold().await;
                    writer.write_all(&frame).await
                } => written?,
            }
        }
    };
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Ok(()),
        read = read => read,
        written = write => written,
    }
}

/// The next frame (header included, ready to relay), or `None` at a clean end of stream. The
/// buffer grows with what arrives, so a length announced but never sent costs nothing.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_message: usize,
) -> io::Result<Option<Bytes>> {
    let mut header = [0u8; FRAME_HEADER];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max_message {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte message is over the {max_message}-byte limit"),
        ));
    }
    let mut frame = BytesMut::with_capacity(FRAME_HEADER + len.min(READ_BUFFER));
    frame.extend_from_slice(&header);
    let mut payload = reader.take(len as u64);
    while frame.len() < FRAME_HEADER + len {
        if payload.read_buf(&mut frame).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed in the middle of a message",
            ));
        }
    }
    Ok(Some(frame.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames are read whole, in order; an end of stream between frames is clean, one inside a
    /// frame or a length over the limit is an error.
    #[tokio::test]
    async fn frames() {
        let mut input: &[u8] = b"\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x00\x00\x02x";
        assert_eq!(
            read_frame(&mut input, 16).await.unwrap().as_deref(),
            Some(&b"\x00\x00\x00\x03abc"[..])
        );
        assert_eq!(
            read_frame(&mut input, 16).await.unwrap().as_deref(),
            Some(&b"\x00\x00\x00\x00"[..])
        );
        let err = read_frame(&mut input, 16).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut empty: &[u8] = b"";
        assert_eq!(read_frame(&mut empty, 16).await.unwrap(), None);
        let mut huge: &[u8] = b"\xff\xff\xff\xff";
        let err = read_frame(&mut huge, 16).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a 4294967295-byte message is over the 16-byte limit"
        );
    }
}
