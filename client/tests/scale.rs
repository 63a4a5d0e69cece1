//! More connections than one process may open (20,000 open files here, a hard limit): 25,000
//! held at once by two echo-client worker processes from two source addresses, against an
//! echo-server of two processes sharing one address, every round trip verified. The scaled-down
//! version of BENCHMARKS.md's 100,000-connection figures ("Beyond one process").

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use echo_client::Report;

mod server_bin;

const CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

/// A running server, killed when the test ends.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(server_bin::path())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no ready line");
        let url = line.trim().strip_prefix("listening ").unwrap().to_owned();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 25,000 connections held for 3 s at one message per connection per second, TCP and
/// WebSocket: every connection opened (paced) and held, none failed, two workers merged.
#[test]
fn twenty_five_thousand_connections() {
    let dir = tempfile::tempdir().unwrap();
    for (server_args, path) in [
        (&["tcp", "--processes", "2"][..], ""),
        (
            &[
                "tungstenite",
                "--processes",
                "2",
                "--ws-read-buffer",
                "4096",
            ],
            "",
        ),
    ] {
        let server = Server::start(server_args);
        let url = format!("{}{path}", server.url);
        let json = dir.path().join("scale.json");
        let output = Command::new(CLIENT)
            .args([&url, "-c", "25000", "--rate", "25000", "-d", "3s"])
            // The window opens once every connection has (paced) and a second has passed;
            // the run fails (exit 3) if they have not all opened within the timeout.
            .args([
                "--connect-rate",
                "10000",
                "--warmup",
                "1s",
                "--warmup-timeout",
                "120s",
            ])
            .args(["--processes", "2", "--source", "127.0.0.2-127.0.0.3"])
            .args(["--json", json.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{url}: {output:?}");
        let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
        // All 25,000 held through the window: none opened again, none closed.
        let s = &report.summary;
        assert_eq!(
            (s.connections_opened, s.connections_closed),
            (0, 0),
            "{url}"
        );
        assert_eq!(s.errors, 0, "{url}: {:?}", report.errors);
        assert!(s.round_trips > 0, "{url}");
        assert_eq!(report.config.connections, 25_000, "{url}");
        let workers = report.workers.unwrap();
        assert_eq!(workers.count, 2, "{url}");
        assert!(
            workers.each.iter().all(|w| w.summary.round_trips > 0),
            "{url}"
        );
    }
}
