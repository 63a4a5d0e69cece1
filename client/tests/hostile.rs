//! A misbehaving server never crashes, bloats or floods the client: for every kind of
//! hostile answer the client counts exactly one error of the right kind per round trip,
//! replaces a connection whose framing is lost instead of reading on, and still reports.
//! (The servers are in `common`; the memory bound is checked in `hostile_memory.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Behaviour, config, serve};
use echo_client::error::ErrorKind;
use echo_client::run::{RunError, RunOptions, run};

/// One hostile behaviour and what the client must make of it.
struct Case {
    scheme: &'static str,
    behaviour: Behaviour,
    total: u64,
    kind: ErrorKind,
    /// Part of the first sample message.
    says: &'static str,
}

const CASES: [Case; 12] = [
    Case {
        scheme: "http",
        behaviour: Behaviour::LyingLength,
        total: 5,
        kind: ErrorKind::EchoMismatch,
        says: "echo has 99999999999 bytes, the message had 32",
    },
    Case {
        scheme: "http",
        behaviour: Behaviour::EndlessChunks,
        total: 3,
        kind: ErrorKind::EchoMismatch,
        says: "echo has 48 bytes, the message had 32",
    },
    Case {
        scheme: "http",
        behaviour: Behaviour::EndlessHead,
        total: 3,
        kind: ErrorKind::ProtocolError,
        says: "response head larger than 65536 bytes",
    },
    Case {
        scheme: "http",
        behaviour: Behaviour::EndlessUntilClose,
        total: 3,
        kind: ErrorKind::EchoMismatch,
        says: "the message had 32",
    },
    Case {
        scheme: "http",
        behaviour: Behaviour::HugeErrorBody,
        total: 3,
        kind: ErrorKind::HttpStatus,
        says: "HTTP 500 instead of 200",
    },
    Case {
        scheme: "http",
        behaviour: Behaviour::Garbage,
        total: 3,
        kind: ErrorKind::ProtocolError,
        says: "protocol error",
    },
    Case {
        scheme: "tcp",
        behaviour: Behaviour::ExtraBytes,
        total: 5,
        kind: ErrorKind::ProtocolError,
        says: "5 bytes arrived after the 32-byte echo: the stream's framing is lost",
    },
    Case {
        scheme: "tcp",
        behaviour: Behaviour::Silence,
        total: 2,
        kind: ErrorKind::RoundTripTimeout,
        says: "no echo within the round-trip timeout",
    },
    Case {
        scheme: "tcp",
        behaviour: Behaviour::ResetMidMessage,
        total: 3,
        kind: ErrorKind::ClosedByPeer,
        says: "closed by peer",
    },
    Case {
        scheme: "ws",
        behaviour: Behaviour::OversizedFrame,
        total: 3,
        kind: ErrorKind::ProtocolError,
        says: "Message too long",
    },
    // A message nobody sent puts every later echo one behind: the connection is replaced
    // at the first mismatch instead of mismatching on every round trip.
    Case {
        scheme: "ws",
        behaviour: Behaviour::Unsolicited,
        total: 3,
        kind: ErrorKind::EchoMismatch,
        says: "echo differs from the message at byte 0",
    },
    Case {
        scheme: "ws",
        behaviour: Behaviour::UnsolicitedInUpgrade,
        total: 3,
        kind: ErrorKind::EchoMismatch,
        says: "echo differs from the message at byte 0",
    },
];

/// Every case: `total` round trips give exactly `total` errors of the case's kind, none of
/// another, not one round trip counted as done, and a fresh connection for each (the framing
/// was lost, or the server stopped answering, every time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_answer_is_one_error_of_its_kind() {
    for case in &CASES {
        let addr = serve(case.behaviour).await;
        let path = if case.scheme == "tcp" { "" } else { "/" };
        let url = format!("{}://{addr}{path}", case.scheme);
        let report = run(config(url, case.total), RunOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{:?}: {err}", case.behaviour));
        let name = format!("{:?}", case.behaviour);
        assert_eq!(
            report.errors.count(case.kind),
            case.total,
            "{name}: {:?}",
            report.errors
        );
        assert_eq!(
            report.summary.errors, case.total,
            "{name}: {:?}",
            report.errors
        );
        assert_eq!(report.summary.round_trips, 0, "{name}");
        assert_eq!(report.summary.connections_opened, case.total, "{name}");
        assert!(report.flags.all_failed, "{name}");
        let sample = &report.errors.kinds[&case.kind].samples[0];
        assert!(sample.contains(case.says), "{name}: {sample}");
    }
}

/// A broken upgrade fails before the load, saying the handshake failed (not that nothing
/// listens there) and what was wrong with it: a 101 with the wrong accept key, or one whose
/// head never ends (read to 16 KiB, no further).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_upgrade_is_a_failed_handshake() {
    let cases = [
        (
            Behaviour::WrongAcceptKey,
            "handshake failed: wrong Sec-WebSocket-Accept `dGhpcyBpcyBub3QgdGhlIGtleQ==`",
        ),
        (
            Behaviour::EndlessUpgrade,
            "handshake failed: the response to the upgrade has no end of its head within 16384 bytes",
        ),
    ];
    for (behaviour, says) in cases {
        let addr = serve(behaviour).await;
        match run(config(format!("ws://{addr}/"), 1), RunOptions::default()).await {
            Err(err @ RunError::Unreachable { .. }) => {
                let text = err.to_string();
                assert!(text.contains(says), "{behaviour:?}: {text}");
                assert!(
                    text.contains("did not complete the WebSocket handshake"),
                    "{behaviour:?}: {text}"
                );
            }
            other => panic!(
                "{behaviour:?}: expected a failed handshake, got {:?}",
                other.map(|r| r.summary)
            ),
        }
    }
}

/// The binary against a server announcing `Content-Length: 99999999999` (which once made it
/// abort on the allocation): exit 4 (every round trip failed), with its report written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_a_lying_server() {
    let addr = serve(Behaviour::LyingLength).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = tokio::task::spawn_blocking({
        let json = json.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_echo-client"))
                .arg(format!("http://{addr}/echo"))
                .args(["-c", "1", "-n", "4", "-t", "1", "--quiet", "--json"])
                .arg(&json)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = echo_client::Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.errors.count(ErrorKind::EchoMismatch), 4);
}
