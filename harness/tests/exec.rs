//! `echo-harness exec`: a command run against a pinned reference server in the same session
//! the harness's trials use — the URL substituted, the command's output passed through, its
//! cost reported on one `ECHOBENCH_EXEC` line, and each failure with its own exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::{HARNESS, bin_dir};

fn exec(args: &[&str]) -> Output {
    Command::new(HARNESS)
        .arg("exec")
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(args)
        .output()
        .unwrap()
}

/// echo-client does exactly 50 round trips through the session's server: its summary comes
/// through, and the last line carries the server's URL and the client's CPU and wall time.
#[test]
fn runs_a_command_against_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let client = bin_dir().join("echo-client");
    let output = exec(&[
        "--server-log",
        log.to_str().unwrap(),
        "tcp",
        "--",
        client.to_str().unwrap(),
        "{url}",
        "-c",
        "1",
        "-n",
        "50",
        "--no-progress",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Round trips  50 completed"), "{stdout}");
    let line = stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("ECHOBENCH_EXEC "))
        .unwrap_or_else(|| panic!("no ECHOBENCH_EXEC line last: {stdout}"));
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["server"], "tcp");
    assert!(
        value["url"]
            .as_str()
            .unwrap()
            .starts_with("tcp://127.0.0.1:"),
        "{value}"
    );
    assert!(value["cpu_s"].as_f64().unwrap() > 0.0, "{value}");
    assert!(value["wall_s"].as_f64().unwrap() > 0.0, "{value}");
}

/// Each failure has its own exit code and a message naming the input.
#[test]
fn failures() {
    let unknown = exec(&["nginx", "--", "true"]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("`nginx` is not a reference server; expected one of: hyper"),
        "{stderr}"
    );

    let failing = exec(&["tcp", "--", "false"]);
    assert_eq!(failing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(stderr.contains("`false` exited with"), "{stderr}");

    let bad_server_flag = exec(&["tcp", "--server-arg=--no-such-flag", "--", "true"]);
    assert_eq!(bad_server_flag.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad_server_flag.stderr);
    assert!(stderr.contains("server did not start"), "{stderr}");

    let no_command = exec(&["tcp"]);
    assert_eq!(no_command.status.code(), Some(2));
}
