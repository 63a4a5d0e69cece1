//! Many clients at once: 200 concurrent connections per implementation, each checking that it
//! gets back its own unique payloads (a mixed-up echo would show as a mismatch).

mod common;

use common::{Client, Echo};
use echo_servers::{Fixture, Impl};

/// 200 connections per implementation each echo 5 unique messages correctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections() {
    for imp in Impl::ALL {
        let srv = Fixture::start(imp).await.unwrap();
        let addr = srv.addr();
        let mut clients = tokio::task::JoinSet::new();
        for id in 0..200u32 {
            clients.spawn(async move {
                let mut client = Client::connect(imp, addr).await;
                for round in 0..5u32 {
                    let body =
                        format!("client {id:04} round {round} {}", "x".repeat(32)).into_bytes();
                    assert_eq!(
                        client.echo(&body).await,
                        Echo::Bytes(body),
                        "{imp} client {id}"
                    );
                }
            });
        }
        let mut done = 0;
        while let Some(result) = clients.join_next().await {
            result.unwrap();
            done += 1;
        }
        assert_eq!(done, 200, "{imp}");
        srv.shutdown().await.unwrap();
    }
}
