//! The client's memory stays bounded whatever a server sends: a body, head or stream that
//! never ends is read only as far as judging the echo needs. One test in its own binary, so
//! no other test's allocations move the process's peak.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Behaviour, config, peak_rss_kib, reset_peak_rss, serve};
use echo_client::run::{RunOptions, run};

/// How much the peak resident memory may grow over the runs below: the workers' histograms
/// and buffers, not the gigabytes the servers offer.
const BOUND_KIB: u64 = 64 * 1024;

/// Endless chunks, an endless head, an endless until-close body and a lying length, each for
/// a second of round trips: the peak RSS grows by less than [`BOUND_KIB`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_answers_do_not_grow_the_client() {
    let mut addrs = Vec::new();
    for behaviour in [
        Behaviour::EndlessChunks,
        Behaviour::EndlessHead,
        Behaviour::EndlessUntilClose,
        Behaviour::LyingLength,
    ] {
        addrs.push(serve(behaviour).await);
    }
    // One run first, so the runtime's and the histograms' own memory is in the baseline.
    let warm = config(format!("http://{}/", addrs[0]), 1);
    run(warm, RunOptions::default()).await.unwrap();
    reset_peak_rss();
    let before = peak_rss_kib();
    for addr in addrs {
        let c = echo_client::Config {
            connections: 4,
            total: None,
            duration: Duration::from_secs(1),
            ..config(format!("http://{addr}/"), 1)
        };
        let report = run(c, RunOptions::default()).await.unwrap();
        assert!(report.summary.errors > 0, "{:?}", report.errors);
    }
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(grew < BOUND_KIB, "peak RSS grew by {grew} KiB");
}
