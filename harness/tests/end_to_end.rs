//! The harness end to end, with real servers and the real client: results files, failing
//! servers, interrupts, and that no server process outlives its run.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{HARNESS, bin_dir, field, marker, processes_with, read_csv, run_dir, server};

fn harness(config: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let dir = out.parent().unwrap();
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(HARNESS)
        .arg("--config")
        .arg(&path)
        .arg("--out")
        .arg(out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(extra)
        .output()
        .unwrap()
}

/// A run folder's manifest.json.
fn manifest(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

// No re-runs of untrusted trials: the tests count rows, and CI hosts have steal.
const RUN: &str =
    "[run]\nduration = \"1s\"\nwarmup = \"200ms\"\ntrials = 1\ncooldown = \"50ms\"\nredo = 0\n";

/// Two servers x one cell x one trial: valid CSVs with the expected columns, non-zero
/// throughput, a complete manifest, and no server left running.
#[test]
fn two_servers_one_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("e2e");
    let config = format!(
        "{RUN}{}{}[[matrix]]\nconnections = [4]\n",
        server("hyper", "hyper", "http", &tag),
        server("tcp", "tcp", "tcp", &tag)
    );
    let output = harness(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let run = run_dir(&out);

    let (header, rows) = read_csv(&run.join("raw.csv"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(field(&header, row, "status"), "ok", "{row:?}");
        let rps: f64 = field(&header, row, "round_trips_per_s").parse().unwrap();
        assert!(rps > 0.0);
        let cpu: f64 = field(&header, row, "server_cpu_s").parse().unwrap();
        assert!(cpu > 0.0, "server CPU was measured");
        assert!(field(&header, row, "client_args").contains("--connections 4"));
        let report = run.join(field(&header, row, "report_file"));
        assert!(
            echobench_core::Report::from_json(&std::fs::read_to_string(report).unwrap()).is_ok()
        );
    }
    assert_eq!(field(&header, &rows[0], "cell_id"), "hyper-c4-s32-r0");

    let (header, rows) = read_csv(&run.join("summary.csv"));
    assert_eq!(rows.len(), 2);
    assert_eq!(field(&header, &rows[1], "server"), "tcp");
    assert_eq!(field(&header, &rows[1], "trials_ok"), "1");

    let (header, rows) = read_csv(&run.join("comparison.csv"));
    assert_eq!(
        header[8..],
        [
            "hyper_rps",
            "hyper_rps_ratio",
            "tcp_rps",
            "tcp_rps_ratio",
            "hyper_p99_us",
            "hyper_p99_ratio",
            "tcp_p99_us",
            "tcp_p99_ratio"
        ]
    );
    assert_eq!(rows.len(), 2, "one row per protocol");

    let manifest = manifest(&run);
    assert_eq!(manifest["incomplete"], false);
    assert_eq!(manifest["trials_recorded"], 2);
    assert_eq!(manifest["pinning"]["client_threads"], 1);
    assert!(manifest["machine"]["cpu_model"].is_string());
    assert!(
        manifest["binaries"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with("echo-server")
    );
    for file in ["summary.md", "throughput.svg", "p99.svg"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        markdown.contains("## HTTP: 32-byte messages, connections kept, closed loop"),
        "{markdown}"
    );
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}

/// A block with trials, window and warmup of its own: its cells run that many trials of that
/// length, interleaved with the cells that run `[run]`'s (trial 1 of both, then trials 2 and 3
/// of the block's alone), and summary.md says so.
#[test]
fn a_block_with_its_own_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("e2e-timing");
    let config = format!(
        "{RUN}{}[[matrix]]\nconnections = [2]\n[[matrix]]\nconnections = [2]\nrate = [500]\ntrials = 3\nduration = \"300ms\"\nwarmup = \"100ms\"\n",
        server("tcp", "tcp", "tcp", &tag),
    );
    let output = harness(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2 cells, 4 trials"), "{stderr}");
    let run = run_dir(&out);
    let (header, rows) = read_csv(&run.join("raw.csv"));
    let order: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (field(&header, r, "cell_id"), field(&header, r, "trial")))
        .collect();
    assert_eq!(
        order,
        [
            ("tcp-c2-s32-r0", "1"),
            ("tcp-c2-s32-r0-rate500", "1"),
            ("tcp-c2-s32-r0-rate500", "2"),
            ("tcp-c2-s32-r0-rate500", "3"),
        ]
    );
    for row in &rows {
        let (args, measured) = (
            field(&header, row, "client_args"),
            field(&header, row, "measured_s"),
        );
        let measured: f64 = measured.parse().unwrap();
        if field(&header, row, "rate") == "500" {
            assert!(args.contains("--duration 300ms --warmup 100ms"), "{args}");
            assert!((0.29..0.5).contains(&measured), "{measured}");
        } else {
            assert!(args.contains("--duration 1s --warmup 200ms"), "{args}");
        }
    }
    let (header, rows) = read_csv(&run.join("summary.csv"));
    let ok: Vec<&str> = rows
        .iter()
        .map(|r| field(&header, r, "trials_ok"))
        .collect();
    assert_eq!(ok, ["1", "3"]);
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        markdown.contains("1 interleaved trial(s) per cell, each 1s measured after a 200ms warmup; [[matrix]] #2 (rate 500/s): 3 trial(s) of 300ms after 100ms."),
        "{markdown}"
    );
    assert_eq!(manifest(&run)["trials_recorded"], 4);
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}

/// `[run] halt_poll` pins a haltpoll guest's idle polling for the run, the manifest records
/// what the run measured with, and the machine's own setting is back afterwards. Where it
/// cannot be applied (no haltpoll driver, not root) the run warns and goes on.
#[test]
fn halt_poll_is_pinned_for_the_run_and_restored() {
    const NS: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";
    const SHRINK: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_allow_shrink";
    let before = (
        std::fs::read_to_string(NS).ok(),
        std::fs::read_to_string(SHRINK).ok(),
    );
    // Opened for writing, not written: whether this process may change it (root).
    let applicable = std::fs::OpenOptions::new().write(true).open(NS).is_ok();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("e2e-idle");
    let config = format!(
        "{RUN}halt_poll = \"150us\"\n{}[[matrix]]\nconnections = [1]\n",
        server("tcp", "tcp", "tcp", &tag)
    );
    let output = harness(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let manifest = manifest(&run_dir(&out));
    let recorded = &manifest["machine"]["idle"]["halt_poll"];
    if applicable {
        assert_eq!(recorded["ns"], 150_000, "{manifest}");
        assert_eq!(recorded["allow_shrink"], false, "{manifest}");
        assert!(!stderr.contains("halt_poll is set, but"), "{stderr}");
    } else {
        assert!(stderr.contains("halt_poll is set, but"), "{stderr}");
        match &before.0 {
            Some(ns) => assert_eq!(recorded["ns"].to_string(), ns.trim(), "{manifest}"),
            None => assert!(recorded.is_null(), "{manifest}"),
        }
    }
    let after = (
        std::fs::read_to_string(NS).ok(),
        std::fs::read_to_string(SHRINK).ok(),
    );
    assert_eq!(
        after, before,
        "the machine's halt-poll setting was not restored"
    );
}

/// A server that exits at once and one that never becomes ready fail their cells with the
/// reason and stderr; the run goes on and exits 3.
#[test]
fn broken_servers_fail_their_cells_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("broken");
    let config = format!(
        "{RUN}ready_timeout = \"1s\"\n{}\
         [[server]]\nname = \"crashes\"\ncommand = [\"sh\", \"-c\", \"echo boom: cannot bind >&2; exit 3\"]\nprotocol = \"http\"\n\
         [[server]]\nname = \"silent\"\ncommand = [\"sh\", \"-c\", \"echo waiting forever >&2; exec sleep 60\"]\nprotocol = \"tcp\"\nenv = {{ ECHOBENCH_TEST_MARKER = \"{tag}\" }}\n\
         [[matrix]]\nconnections = [2]\n",
        server("tcp", "tcp", "tcp", &tag)
    );
    let output = harness(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let run = run_dir(&out);
    let (header, rows) = read_csv(&run.join("raw.csv"));
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (field(&header, r, "server"), field(&header, r, "status")))
        .collect();
    assert_eq!(
        status,
        [("tcp", "ok"), ("crashes", "failed"), ("silent", "failed")]
    );
    let crash = std::fs::read_to_string(run.join("logs/crashes-c2-s32-r0-t1-server.log")).unwrap();
    assert!(crash.contains("boom"));
    let reason = field(&header, &rows[1], "reason");
    assert!(
        reason.contains("exited before printing `listening <URL>`"),
        "{reason}"
    );
    assert!(field(&header, &rows[2], "reason").contains("not ready within 1s"));
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        markdown.contains("boom: cannot bind"),
        "the stderr tail is in the summary: {markdown}"
    );
    assert!(
        processes_with(&tag).is_empty(),
        "the silent server was not stopped"
    );
}

/// SIGINT or SIGTERM mid-run: the trial stops, results so far are kept and valid, the run is
/// marked incomplete, exit 130, and no server survives.
#[test]
fn interrupts_keep_partial_results() {
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        interrupted_by(signal);
    }
}

fn interrupted_by(signal: nix::sys::signal::Signal) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker(&format!("{signal:?}"));
    let config = format!(
        "[run]\nduration = \"20s\"\nwarmup = \"0s\"\ntrials = 2\nredo = 0\n{}[[matrix]]\nconnections = [1, 2]\n",
        server("tcp", "tcp", "tcp", &tag)
    );
    let path = tmp.path().join("bench.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(HARNESS)
        .arg("--config")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // The run folder is announced before the first trial; then wait for a server of the
    // first trial to be up, which proves a trial is in progress.
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("no start line");
        if line.starts_with("echo-harness:") {
            break;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while processes_with(&tag).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no server started");
        std::thread::yield_now();
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait().unwrap());
    });
    let status = done
        .recv_timeout(Duration::from_secs(20))
        .expect("the harness did not stop");
    assert_eq!(status.code(), Some(130));
    let run = run_dir(&out);
    let manifest = manifest(&run);
    assert_eq!(manifest["incomplete"], true);
    let (header, rows) = read_csv(&run.join("raw.csv"));
    assert!(rows.len() <= 1, "{rows:?}");
    if let Some(row) = rows.first() {
        assert_eq!(field(&header, row, "status"), "interrupted");
        // Interrupted during the load, the client's partial report covers less than the 20 s;
        // interrupted before it, there is no report at all.
        if let Ok(measured) = field(&header, row, "measured_s").parse::<f64>() {
            assert!(measured < 20.0);
        }
    }
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(markdown.contains("**Incomplete run**"));
    assert!(
        processes_with(&tag).is_empty(),
        "a server outlived the interrupt"
    );
}

/// A server that crashes in the middle of its cell fails that cell with the reason and its
/// stderr tail; the next cell runs normally.
#[test]
fn server_crashing_mid_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("crash");
    // The fault: a wrapper that kills its echo-server a second into the 2 s load, then exits 1.
    let config = format!(
        "[run]\nduration = \"2s\"\nwarmup = \"0s\"\ntrials = 1\nredo = 0\n\
         [[server]]\nname = \"dies\"\ncommand = [\"sh\", \"-c\", \"{{bin}}/echo-server tcp --addr {{addr}} --threads 1 & sleep 1; echo about to crash >&2; kill -9 $!; exit 1\"]\nprotocol = \"tcp\"\nenv = {{ ECHOBENCH_TEST_MARKER = \"{tag}\" }}\n{}\
         [[matrix]]\nconnections = [2]\n",
        server("tcp", "tcp", "tcp", &tag)
    );
    let output = harness(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let run = run_dir(&out);
    let (header, rows) = read_csv(&run.join("raw.csv"));
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (field(&header, r, "server"), field(&header, r, "status")))
        .collect();
    assert_eq!(status, [("dies", "failed"), ("tcp", "ok")]);
    let reason = field(&header, &rows[0], "reason");
    assert!(reason.contains("server exited during the run"), "{reason}");
    assert!(
        reason.contains("about to crash"),
        "the stderr tail is in the reason: {reason}"
    );
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}

/// A server announcing a non-loopback address is refused before any load (nothing is sent
/// there), the cell fails saying why.
#[test]
fn remote_targets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let config = format!(
        "{RUN}[[server]]\nname = \"elsewhere\"\ncommand = [\"sh\", \"-c\", \"echo listening http://192.0.2.1:80/echo; exec sleep 30\"]\nprotocol = \"http\"\n[[matrix]]\nconnections = [1]\n"
    );
    let output = harness(&config, &out, &[]);
    assert_eq!(output.status.code(), Some(3));
    let (header, rows) = read_csv(&run_dir(&out).join("raw.csv"));
    let reason = field(&header, &rows[0], "reason");
    assert!(
        reason.contains("not a loopback address") && reason.contains("--allow-remote"),
        "{reason}"
    );
}

/// A bad config file is refused with its path, line and field, exit 2, before anything runs.
#[test]
fn bad_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let output = harness("[run]\ntrails = 3\n", &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bench.toml"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("unknown field `trails`"), "{stderr}");
    assert!(!out.exists(), "nothing is written for a bad config");
}

/// `compare` reads two runs and prints a verdict per shared cell.
#[test]
fn compare_two_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let tag = marker("compare");
    let config = format!(
        "{RUN}trials = 2\n{}[[matrix]]\nconnections = [2]\n",
        server("tcp", "tcp", "tcp", &tag)
    )
    .replace("trials = 1\n", "");
    for label in ["a", "b"] {
        let output = harness(&config, &out, &["--label", label, "--duration", "300ms"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut runs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert!(
        runs[0].display().to_string().ends_with("-a")
            && runs[1].display().to_string().ends_with("-b")
    );
    let output = Command::new(HARNESS)
        .arg("compare")
        .args(&runs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("| tcp c=2 size=32 r=0 |"), "{stdout}");
    assert!(stdout.contains("Welch's t-test"), "{stdout}");
}
