//! One test over many workers: `--shard I/N` shares that add up to the test, `--start-at`,
//! `echo-client merge`, `--processes` (worker processes, a worker that fails fails the run)
//! and `--source` (connections from several local addresses), on loopback.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use echo_client::run::{RunOptions, run};
use echo_client::{Config, Report};
use echo_servers::{Fixture, Impl};
use echobench_core::shard::{ShardSpec, merge};

const BIN: &str = env!("CARGO_BIN_EXE_echo-client");

fn read(path: &std::path::Path) -> Report {
    Report::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Three shards of `-c 7 -r 10 -n 700` run in one process, their windows opened at one
/// instant, merge into exactly the test: 700 round trips over 70 connections, every
/// worker's figures kept.
#[tokio::test]
async fn shards_merge_into_the_test() {
    let srv = Fixture::builder(Impl::Tcp).start().await.unwrap();
    let test = Config {
        connections: 7,
        roundtrips: 10,
        total: Some(700),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        threads: 1,
        start_at: Some(SystemTime::now() + Duration::from_millis(300)),
        ..Config::new(srv.url())
    };
    let runs = (1..=3).map(|index| {
        let config = test.shard(ShardSpec { index, count: 3 }).unwrap();
        async move { run(config, RunOptions::default()).await.unwrap() }
    });
    let reports = futures_util::future::join_all(runs).await;
    let shares: Vec<(u32, u64)> = reports
        .iter()
        .map(|r| (r.config.connections, r.summary.round_trips))
        .collect();
    assert_eq!(shares, [(2, 200), (2, 200), (3, 300)]);
    for report in &reports {
        assert!(report.start_offset_s.is_some(), "--start-at is reported");
    }
    let named: Vec<(String, Report)> = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("shard{i}"), r))
        .collect();
    let merged = merge(&named, true).unwrap();
    assert_eq!(merged.summary.round_trips, 700);
    assert_eq!(merged.summary.connections_opened, 70);
    assert_eq!(merged.summary.errors, 0);
    assert_eq!(merged.latency.round_trip.count, 700);
    assert_eq!(merged.config.connections, 7);
    assert_eq!(merged.config.total, Some(700));
    assert_eq!(merged.config.shard, None);
    let workers = merged.workers.unwrap();
    assert_eq!(workers.count, 3);
    assert_eq!(
        workers
            .each
            .iter()
            .map(|w| w.shard.as_str())
            .collect::<Vec<_>>(),
        ["1/3", "2/3", "3/3"]
    );
}

/// The binary: `--shard` runs write reports that `echo-client merge` adds up; reports of
/// another test are refused with exit 2, naming the field.
#[test]
fn merge_command() {
    let srv = Fixture::builder(Impl::Tcp).start_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let shard = |spec: &str, size: &str, out: &str| {
        let output = Command::new(BIN)
            .args([
                &srv.url(),
                "-c",
                "4",
                "-n",
                "400",
                "-t",
                "1",
                "--size",
                size,
            ])
            .args(["--shard", spec, "--json", &path(out), "--quiet"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    shard("1/2", "32", "a.json");
    shard("2/2", "32", "b.json");
    shard("2/2", "64", "c.json");
    let output = Command::new(BIN)
        .args([
            "merge",
            &path("a.json"),
            &path("b.json"),
            "--json",
            &path("m.json"),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let merged = read(&dir.path().join("m.json"));
    assert_eq!(merged.summary.round_trips, 400);
    assert_eq!(merged.workers.as_ref().map(|w| w.count), Some(2));
    assert!(String::from_utf8_lossy(&output.stdout).contains("400"));

    let refused = Command::new(BIN)
        .args(["merge", &path("a.json"), &path("c.json")])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("config.size is 64"), "{stderr}");
    let missing = Command::new(BIN)
        .args(["merge", &path("a.json")])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("shard 2/2 missing"));
}

/// `--processes 3`: three workers, one merged report of exactly the test.
#[test]
fn processes_run_one_test() {
    let srv = Fixture::builder(Impl::Tungstenite)
        .start_blocking()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let hdr = dir.path().join("r.hlog");
    let output = Command::new(BIN)
        .args([
            &srv.url(),
            "-c",
            "6",
            "-r",
            "5",
            "-n",
            "300",
            "--processes",
            "3",
        ])
        .args(["--json", json.to_str().unwrap(), "--quiet"])
        .args(["--hdr-log", hdr.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report = read(&json);
    // The interval log is written from the merged timeline: one interval per second of it.
    let log = std::fs::read_to_string(&hdr).unwrap();
    assert!(log.contains("StartTime"), "{log}");
    let intervals = log
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
        .count();
    assert!(!report.timeline.is_empty());
    assert_eq!(intervals, report.timeline.len(), "{log}");
    assert_eq!(report.summary.round_trips, 300);
    assert_eq!(report.summary.connections_opened, 60);
    assert_eq!(report.config.connections, 6);
    let workers = report.workers.unwrap();
    assert_eq!(workers.count, 3);
    assert_eq!(
        workers
            .each
            .iter()
            .map(|w| w.summary.round_trips)
            .sum::<u64>(),
        300
    );
}

/// `--stages` over `--processes 2` (each worker runs its share of every stage): one merged
/// report with the test's stages, each stage's round trips the sum of the workers', and the
/// connection stages held by whole connections.
#[test]
fn stages_over_processes() {
    let srv = Fixture::builder(Impl::Tcp).start_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (label, args) in [
        (
            "rate",
            &[
                "-c",
                "4",
                "--rate",
                "100",
                "--stages",
                "600ms:300,600ms:=50",
            ][..],
        ),
        (
            "connections",
            &["-c", "2", "--stages", "600ms:=5,600ms:=3"][..],
        ),
    ] {
        let json = dir.path().join(format!("{label}.json"));
        let output = Command::new(BIN)
            .arg(srv.url())
            .args(args)
            .args(["--processes", "2", "--warmup", "0s"])
            .args(["--json", json.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{label}: {output:?}");
        let report = read(&json);
        assert_eq!(
            report.config.stages,
            Some(args[args.len() - 1].parse().unwrap()),
            "{label}"
        );
        assert_eq!(report.workers.as_ref().unwrap().count, 2, "{label}");
        assert_eq!(report.stages.len(), 2, "{label}");
        let levels: Vec<(f64, f64)> = report.stages.iter().map(|s| (s.from, s.to)).collect();
        let expected = match label {
            "rate" => vec![(100.0, 300.0), (50.0, 50.0)],
            _ => vec![(5.0, 5.0), (3.0, 3.0)],
        };
        assert_eq!(levels, expected, "{label}");
        let in_stages: u64 = report.stages.iter().map(|s| s.record.round_trips).sum();
        assert!(in_stages > 0, "{label}");
        assert_eq!(report.summary.errors, 0, "{label}: {:?}", report.errors);
    }
}

/// A worker that cannot run fails the run, with its stderr, never a smaller load.
#[test]
fn failed_worker_fails_the_run() {
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(BIN)
        .args([&format!("tcp://127.0.0.1:{port}"), "-c", "2", "-d", "1s"])
        .args(["--processes", "2", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Whichever worker ends first is named (both fail here).
    assert!(
        stderr.contains("worker process 1/2 failed")
            || stderr.contains("worker process 2/2 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot reach"),
        "the worker's own stderr: {stderr}"
    );
}

/// `--source 127.0.0.2-127.0.0.4`: connections come from those addresses, in turn.
#[test]
fn source_addresses_in_turn() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(BTreeSet::<IpAddr>::new()));
    let seen = Arc::clone(&peers);
    std::thread::spawn(move || {
        // Each connection echoes on a thread of its own until the client closes it.
        for stream in listener.incoming().take(7) {
            let mut stream = stream.unwrap();
            seen.lock()
                .unwrap()
                .insert(stream.peer_addr().unwrap().ip());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let output = Command::new(BIN)
        .args([&format!("tcp://{addr}"), "-c", "6", "-n", "60", "-t", "1"])
        .args(["--source", "127.0.0.2-127.0.0.4", "--quiet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let expected: BTreeSet<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    // The preflight connection takes the first address, so all three are used.
    assert_eq!(*peers.lock().unwrap(), expected);
}
