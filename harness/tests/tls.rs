//! TLS servers in a matrix: `tls = true` servers write the certificate to trust to `{ca}`,
//! the client trusts that file, and cells with `tls_resume = true` resume sessions while the
//! others do full handshakes, each counted in raw.csv.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{HARNESS, bin_dir, field, harness_in, marker, processes_with, read_csv, run_dir};

const RUN: &str =
    "[run]\nduration = \"1s\"\nwarmup = \"200ms\"\ntrials = 1\ncooldown = \"50ms\"\nredo = 0\n";

fn tls_server(name: &str, implementation: &str, protocol: &str, extra: &str, tag: &str) -> String {
    format!(
        "[[server]]\nname = \"{name}\"\ncommand = [\"{{bin}}/echo-server\", \"{implementation}\", \"--addr\", \"{{addr}}\", \"--threads\", \"1\", \"--tls\"{extra}]\nprotocol = \"{protocol}\"\ntls = true\nenv = {{ ECHOBENCH_TEST_MARKER = \"{tag}\" }}\n"
    )
}

/// Keep-alive and churn cells against a TLS hyper, a TLS tcp server and a tcp server given the
/// harness's `{cert}` and `{key}`, with and without
/// resumption: every trial ok, one handshake per connection opened in the window (none for
/// kept connections, opened in the warmup), full ones without resumption, nearly all resumed
/// with it, and `--cacert` among the client's arguments.
#[test]
fn tls_cells_count_their_handshakes() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = marker("tls-cells");
    // The third makes no certificate of its own (as a peer): the harness makes one, passes
    // {cert} and {key}, and writes {ca} itself.
    let config = format!(
        "{RUN}{}{}{}[[matrix]]\nconnections = [2]\nroundtrips = [0, 5]\nrate = [200]\n[[matrix]]\nconnections = [2]\nroundtrips = [5]\nrate = [200]\ntls_resume = true\n",
        tls_server(
            "hyper-tls",
            "hyper",
            "http",
            ", \"--cert-out\", \"{ca}\"",
            &tag
        ),
        tls_server("tcp-tls", "tcp", "tcp", ", \"--cert-out\", \"{ca}\"", &tag),
        tls_server(
            "tcp-given",
            "tcp",
            "tcp",
            ", \"--cert\", \"{cert}\", \"--key\", \"{key}\"",
            &tag
        ),
    );
    // The config in a folder of its own and a relative --out: servers run in the config's
    // folder, so `{ca}` must not be relative to the harness's.
    std::fs::create_dir(tmp.path().join("configs")).unwrap();
    let path = tmp.path().join("configs").join("tls.toml");
    std::fs::write(&path, &config).unwrap();
    let output = Command::new(HARNESS)
        .current_dir(tmp.path())
        .args([
            "--config",
            "configs/tls.toml",
            "--out",
            "results",
            "--bin-dir",
        ])
        .arg(bin_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let run = run_dir(&tmp.path().join("results"));
    let (header, rows) = read_csv(&run.join("raw.csv"));
    assert_eq!(rows.len(), 9, "3 servers x (kept, churn, churn resumed)");
    for row in &rows {
        let get = |c| field(&header, row, c);
        assert_eq!(get("status"), "ok", "{row:?}");
        assert_eq!(get("errors"), "0", "{row:?}");
        assert!(get("client_args").contains("--cacert"), "{row:?}");
        let opened: u64 = get("connections_opened").parse().unwrap();
        let handshakes: u64 = get("tls_handshakes").parse().unwrap();
        let resumed: u64 = get("tls_resumed").parse().unwrap();
        assert_eq!(handshakes, opened, "{row:?}");
        // Kept connections open during the warmup: the window has no handshake.
        let churn = get("roundtrips") != "0";
        assert_eq!(!get("tls_handshake_p50_us").is_empty(), churn, "{row:?}");
        match (get("roundtrips"), get("tls_resume")) {
            ("0", "false") => assert_eq!(handshakes, 0, "{row:?}"),
            ("5", "false") => assert_eq!(resumed, 0, "{row:?}"),
            ("5", "true") => {
                assert!(get("cell_id").ends_with("-resume"), "{row:?}");
                // The first connection of each client may be a full handshake.
                assert!(resumed + 2 >= handshakes && handshakes > 10, "{row:?}");
            }
            other => panic!("unexpected cell {other:?}"),
        }
    }
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
    // The identity the harness made stays beside the logs, but not its private key.
    let logs: Vec<String> = std::fs::read_dir(run.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter()
            .any(|f| f.starts_with("tcp-given") && f.ends_with(".cert.pem"))
    );
    assert!(!logs.iter().any(|f| f.ends_with(".key.pem")), "{logs:?}");
}

/// A `tls = true` server that does not write `{ca}` fails its cells with a message saying
/// what to add.
#[test]
fn a_tls_server_must_write_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = marker("tls-no-ca");
    let config = format!(
        "{RUN}{}[[matrix]]\nconnections = [1]\nrate = [100]\n",
        tls_server("tcp-tls", "tcp", "tcp", "", &tag)
    );
    let output = harness_in(tmp.path(), None, &config);
    let run = run_dir(&tmp.path().join("results"));
    let (header, rows) = read_csv(&run.join("raw.csv"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(rows.len(), 1, "{stderr}");
    assert_eq!(field(&header, &rows[0], "status"), "failed");
    assert!(
        field(&header, &rows[0], "reason").contains("add --cert-out {ca}"),
        "{rows:?}"
    );
    assert!(processes_with(&tag).is_empty(), "a server outlived the run");
}
