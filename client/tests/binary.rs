//! The `echo-client` binary: its documented exit codes, its outputs, and that an interrupted
//! run still writes its report.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use echo_client::Report;
use echo_servers::{Fixture, Impl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod server_bin;

const BIN: &str = env!("CARGO_BIN_EXE_echo-client");

fn client(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Starts echo-client with `args` and returns once it has logged that the load started.
fn spawn_started(args: &[&str]) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "echo_client=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (started_tx, started) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("load started") {
                let _ = started_tx.send(());
            }
        }
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the load never started");
    child
}

/// Waits for `child` to exit, failing the test if it takes longer than `limit` (a hang).
fn exits_within(mut child: std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait().unwrap());
    });
    done.recv_timeout(limit)
        .expect("echo-client did not exit in time")
}

/// A completed run exits 0, prints the summary and writes the JSON and CSV files.
#[test]
fn completed_run_exits_zero() {
    let srv = Fixture::builder(Impl::Hyper).start_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let csv = dir.path().join("r.csv");
    let output = client(&[
        &srv.url(),
        "-c",
        "2",
        "-n",
        "50",
        "-t",
        "1",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Round trips  50 completed"), "{stdout}");
    assert!(stdout.contains("Errors       none"), "{stdout}");
    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.summary.round_trips, 50);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 2);
}

/// `--workload broadcast` prints what was published and delivered, exactly, and exits 0.
#[test]
fn broadcast_summary() {
    let srv = Fixture::builder(Impl::AxumWs).start_blocking().unwrap();
    let url = srv.broadcast_url().unwrap();
    let output = client(&[
        &url,
        "--workload",
        "broadcast",
        "-c",
        "4",
        "--publishers",
        "2",
        "--pipeline",
        "2",
        "-s",
        "64",
        "-d",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("broadcast, closed loop: 2 of each publisher's own messages in flight"),
        "{stdout}"
    );
    assert!(
        stdout.contains(" published by 2 of 4 subscribers; "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "0 missing, 0 duplicated, 0 out of order, 0 malformed; 0 subscribers dropped"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("  slowest sub "), "{stdout}");
}

/// Bad flags, a non-loopback target and an unreachable one each have their exit code and a
/// one-line error naming the input.
#[test]
fn failures_have_their_exit_codes() {
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("tcp://127.0.0.1:{free_port}");
    let cases: [(&[&str], i32, &str); 11] = [
        (
            &["ws://127.0.0.1:1/broadcast", "--workload", "broadcast"],
            2,
            "--workload broadcast needs --size 41 or more",
        ),
        (
            &["ws://127.0.0.1:1/", "--workload", "fanout"],
            2,
            "invalid value 'fanout' for '--workload <KIND>'",
        ),
        (
            &["http://127.0.0.1:1/", "-c", "0"],
            2,
            "--connections must be at least 1",
        ),
        (
            &["http://127.0.0.1:1/", "--rate=-5"],
            2,
            "--rate must be a positive number",
        ),
        (&["ftp://127.0.0.1:1/"], 2, "unsupported scheme `ftp`"),
        (&["https://127.0.0.1:1/"], 2, "pass --cacert FILE"),
        (
            &["http://127.0.0.1:1/", "--insecure"],
            2,
            "need an https://",
        ),
        (
            &["wss://127.0.0.1:1/", "--cacert", "/nonexistent.pem"],
            2,
            "--cacert /nonexistent.pem: cannot read it",
        ),
        (&["http://192.0.2.7/"], 2, "--allow-remote"),
        (&[&unreachable, "-d", "1s"], 3, "cannot reach"),
        (&["tcp://127.0.0.1:1", "--size", "0"], 2, "--size 0"),
    ];
    for (args, code, needle) in cases {
        let output = client(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A run in which every round trip fails exits 4, and still writes its report.
#[test]
fn all_failed_exits_four() {
    let srv = Fixture::builder(Impl::Tcp)
        .delay(Duration::from_millis(300))
        .start_blocking()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let output = client(&[
        &srv.url(),
        "-c",
        "1",
        "-n",
        "2",
        "--timeout",
        "50ms",
        "--connect-timeout",
        "5s",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(4));
    assert!(output.stdout.is_empty(), "--quiet prints nothing");
    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.flags.all_failed);
    assert_eq!(report.summary.errors, 2);
}

/// SIGINT mid-run stops the run, exits 130, and the report covers what ran.
#[test]
fn interrupted_run_still_reports() {
    let srv = Fixture::builder(Impl::Tcp).start_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let child = spawn_started(&[
        &srv.url(),
        "-c",
        "4",
        "-d",
        "60s",
        "--warmup",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
    let status = exits_within(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.interrupted);
    assert!(report.measured_s < 30.0, "{}", report.measured_s);
}

/// A server killed mid-run: the client does not hang, ends at its deadline, counts the errors
/// by kind, writes a complete report, and exits 0 (round trips before the kill completed).
#[test]
fn server_killed_mid_run() {
    let server_bin = server_bin::path();
    let mut server = Command::new(server_bin)
        .args(["tcp", "--threads", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let url = ready.trim().strip_prefix("listening ").unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let child = spawn_started(&[
        &url,
        "-c",
        "4",
        "-d",
        "2s",
        "--warmup",
        "0s",
        "--timeout",
        "500ms",
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    server.kill().unwrap();
    server.wait().unwrap();
    let began = std::time::Instant::now();
    let status = exits_within(child, Duration::from_secs(10));
    assert!(began.elapsed() < Duration::from_secs(5));
    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.summary.errors > 0, "{:?}", report.errors);
    let kinds: Vec<&str> = report.errors.kinds.keys().map(|k| k.name()).collect();
    assert!(
        kinds
            .iter()
            .all(|k| ["closed_by_peer", "connect_refused", "send_failed"].contains(k)),
        "{:?}",
        report.errors
    );
    assert_eq!(
        status.code(),
        Some(if report.summary.round_trips > 0 { 0 } else { 4 })
    );
    assert!(!report.interrupted);
}
