//! `tcp`: raw TCP echo on tokio, the floor every protocol is compared against. Bytes are
//! echoed as they arrive, one write per read; there are no messages, so `max_message` does not
//! apply and the faults count reads.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::acceptor::{self, Accept, Stream};
use crate::fault::{self, FaultPlan};
use crate::options::Options;

/// Read buffer per connection: large enough that a 64 KiB message takes one read when the
/// kernel has it all.
const READ_BUFFER: usize = 64 * 1024;

/// Serves TCP echo on `listener` until `shutdown` is cancelled and connections have closed.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, &[])?;
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
    let mut buffer = vec![0u8; READ_BUFFER];
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
    }
}
