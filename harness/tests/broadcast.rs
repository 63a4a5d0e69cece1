//! Broadcast cells and broadcast capacity searches end to end: real relays (`/broadcast` on a
//! WebSocket server, `tcp --broadcast`), the real client, and the files they write.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{field, harness_in, marker, processes_with, read_csv, run_dir};

/// A relay server; `workloads` as the config writes it.
fn relay(name: &str, args: &str, protocol: &str, workloads: &str, tag: &str) -> String {
    format!(
        "[[server]]\nname = \"{name}\"\ncommand = [\"{{bin}}/echo-server\", {args}, \"--addr\", \"{{addr}}\", \"--threads\", \"1\"]\nprotocol = \"{protocol}\"\nworkloads = {workloads}\nenv = {{ ECHOBENCH_TEST_MARKER = \"{tag}\" }}\n"
    )
}

const RUN: &str =
    "[run]\nduration = \"1s\"\nwarmup = \"200ms\"\ntrials = 1\ncooldown = \"50ms\"\nredo = 0\n";

/// A WebSocket server that echoes and relays, and a TCP relay that only relays: the echo
/// block runs on the first alone, the broadcast block on both (the relay-only server checked
/// with a broadcast before its load); every delivery is counted exactly, and summary.md has
/// the broadcast table.
#[test]
fn broadcast_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = marker("broadcast-cells");
    let config = format!(
        "{RUN}{}{}[[matrix]]\nconnections = [2]\n[[matrix]]\nworkload = \"broadcast\"\nconnections = [5]\nsize = [64]\nrate = [100]\npublishers = [2]\n",
        relay(
            "tungstenite",
            "\"tungstenite\"",
            "websocket",
            "[\"echo\", \"broadcast\"]",
            &tag
        ),
        relay(
            "tcp-relay",
            "\"tcp\", \"--broadcast\"",
            "tcp",
            "[\"broadcast\"]",
            &tag
        ),
    );
    let output = harness_in(tmp.path(), None, &config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let run = run_dir(&tmp.path().join("results"));
    let (header, rows) = read_csv(&run.join("raw.csv"));
    let ids: Vec<&str> = rows.iter().map(|r| field(&header, r, "cell_id")).collect();
    assert_eq!(
        ids,
        [
            "tungstenite-c2-s32-r0",
            "tungstenite-c5-s64-r0-rate100-pub2",
            "tcp-relay-c5-s64-r0-rate100-pub2"
        ]
    );
    for row in &rows[1..] {
        assert_eq!(field(&header, row, "status"), "ok", "{row:?}");
        assert_eq!(field(&header, row, "publishers"), "2");
        let published: u64 = field(&header, row, "published").parse().unwrap();
        assert!(published > 0);
        let expected: u64 = field(&header, row, "deliveries_expected").parse().unwrap();
        assert_eq!(expected, published * 5);
        assert_eq!(field(&header, row, "delivered"), expected.to_string());
        // Round trips are the deliveries that arrived in the window.
        assert_eq!(
            field(&header, row, "round_trips_per_s"),
            field(&header, row, "deliveries_per_s")
        );
        for zero in ["missing", "duplicated", "malformed", "subscribers_dropped"] {
            assert_eq!(field(&header, row, zero), "0", "{zero}");
        }
        let args = field(&header, row, "client_args");
        assert!(
            args.contains("--workload broadcast --publishers 2"),
            "{args}"
        );
    }
    assert!(field(&header, &rows[1], "client_args").contains("/broadcast "));
    assert_eq!(field(&header, &rows[0], "publishers"), "");
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(markdown.contains("## Broadcast"), "{markdown}");
    assert!(
        markdown.contains("| tcp-relay | 5 | 2 | 100/s |"),
        "{markdown}"
    );
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}

/// The stepped question (how many subscribers until the SLO breaks) against a relay of known
/// capacity: at most 500 deliveries/s leave it, and every subscriber receives the 25
/// messages/s published, so 20 subscribers fit (20.6 within the SLO's 3%). As in the echo
/// capacity tests, the achieved share of the offered deliveries decides, whatever the host.
#[test]
fn searches_subscribers_of_a_known_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = marker("broadcast-capacity");
    let config = format!(
        "{RUN}[slo]\nlimits = \"p95<=500ms,errors<=0%,rate>=97%\"\n\
[search]\nmode = \"connections\"\nstart = 4\nmin = 2\nmax = 200\nper_connection_rate = 25\n\
duration = \"1s\"\nwarmup = \"200ms\"\ncooldown = \"50ms\"\nconfirm = 0\n\
max_steal_percent = 100\nmax_pacer_late_percent = 100\n{}\
[[matrix]]\nworkload = \"broadcast\"\nconnections = [4]\nsize = [64]\n",
        relay(
            "limited",
            "\"tcp\", \"--broadcast\", \"--max-rate\", \"500\"",
            "tcp",
            "[\"broadcast\"]",
            &tag
        ),
    );
    let output = harness_in(tmp.path(), Some("capacity"), &config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let run = run_dir(&tmp.path().join("results"));
    let (header, rows) = read_csv(&run.join("capacity.csv"));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(field(&header, row, "publishers"), "1");
    assert_eq!(field(&header, row, "mode"), "connections");
    let subscribers: f64 = field(&header, row, "capacity_connections").parse().unwrap();
    // At most 3% over the limit (the SLO's allowance) plus the timer's; host stalls can only
    // lower what is found.
    assert!(
        (17.0..=21.0).contains(&subscribers),
        "{subscribers} subscribers\n{stderr}"
    );
    let (pheader, probes) = read_csv(&run.join("probes.csv"));
    for p in &probes {
        let offered: f64 = field(&pheader, p, "offered_rps").parse().unwrap();
        assert_eq!(offered, 25.0, "the publish rate stays");
        let subscribers: u32 = field(&pheader, p, "probe_connections").parse().unwrap();
        if subscribers >= 22 {
            assert_eq!(field(&pheader, p, "verdict"), "fail", "{p:?}");
        }
    }
    let markdown = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        markdown.contains("broadcast size=64 publishers=1 at 25/s"),
        "{markdown}"
    );
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}
