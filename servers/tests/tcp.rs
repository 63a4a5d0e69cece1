//! The raw TCP server echoes byte streams of every size unchanged, however they are split.

mod common;

use common::{SIZES, STEP, payload};
use echo_servers::{Fixture, Impl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Streams of every size come back byte-for-byte while they are still being written.
#[tokio::test]
async fn echoes_streams_of_every_size() {
    let srv = Fixture::start(Impl::Tcp).await.unwrap();
    for size in SIZES.into_iter().filter(|&s| s > 0) {
        let stream = TcpStream::connect(srv.addr()).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let sent = payload(size, 5);
        let to_send = sent.clone();
        // Written in uneven pieces; read concurrently so full socket buffers cannot deadlock.
        let writing = tokio::spawn(async move {
            for piece in to_send.chunks(7919) {
                writer.write_all(piece).await.unwrap();
            }
            writer
        });
        let mut echoed = vec![0u8; size];
        tokio::time::timeout(STEP, reader.read_exact(&mut echoed))
            .await
            .expect("echo timed out")
            .unwrap();
        assert!(echoed == sent, "size {size}: echo differs");
        let mut writer = writing.await.unwrap();
        writer.shutdown().await.unwrap();
        // After our FIN the server closes too, with nothing extra.
        let mut rest = Vec::new();
        tokio::time::timeout(STEP, reader.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(
            rest.is_empty(),
            "size {size}: {} unexpected bytes",
            rest.len()
        );
    }
}
