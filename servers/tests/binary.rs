//! The `echo-server` binary: the ready line is the only stdout, SIGTERM and SIGINT stop it
//! gracefully with exit 0 (WebSocket peers get 1001), and bad input fails with one clear line.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Client, Echo, ws_next};
use echo_servers::Impl;
use futures_util::SinkExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio_tungstenite::tungstenite::Message;

/// The `echo-server` binary (package `echo-server`, which holds the flags), built once per
/// test binary into this profile's folder.
fn bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "echo-server",
                "--bin",
                "echo-server",
            ])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building echo-server failed");
        // This test runs from <target>/<profile>/deps/.
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("echo-server")
    })
}

/// A running `echo-server`, killed if a test fails before it exits.
struct Server {
    child: Option<Child>,
    url: String,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Server {
    /// Starts the binary and waits (bounded) for its ready line.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send((line, stdout));
        });
        let (line, stdout) = rx
            .recv_timeout(common::STEP)
            .expect("no ready line within 10 s");
        let url = line
            .strip_suffix('\n')
            .and_then(|l| l.strip_prefix("listening "))
            .unwrap_or_else(|| panic!("bad ready line {line:?}"))
            .to_owned();
        Server {
            child: Some(child),
            url,
            stdout: Some(stdout),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once("://").unwrap().1;
        rest.split('/').next().unwrap().parse().unwrap()
    }

    fn signal(&self, signal: Signal) {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    }

    /// Waits (at most 5 s, the documented bound) for exit; returns the code and the rest of stdout.
    fn exit(mut self) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        let mut reader = self.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            let _ = tx.send((child.wait().unwrap(), rest));
        });
        let (status, rest) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("echo-server did not exit within 5 s");
        (status.code().unwrap_or(-1), rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The ready line names the scheme, bound address and path of each implementation.
#[tokio::test]
async fn ready_line_then_echo_then_sigterm() {
    for (imp, scheme, path) in [
        (Impl::Hyper, "http", "/echo"),
        (Impl::Axum, "http", "/echo"),
        (Impl::Tungstenite, "ws", "/ws"),
        (Impl::AxumWs, "ws", "/ws"),
        (Impl::Tcp, "tcp", ""),
    ] {
        let server = Server::start(&[imp.name(), "--threads", "1"]);
        let addr = server.addr();
        assert_eq!(server.url, format!("{scheme}://{addr}{path}"));
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{imp}: {addr}");
        let mut client = Client::connect(imp, addr).await;
        assert_eq!(
            client.echo(b"hi there").await,
            Echo::Bytes(b"hi there".to_vec()),
            "{imp}"
        );
        drop(client);
        server.signal(Signal::SIGTERM);
        let (code, rest) = server.exit();
        assert_eq!(code, 0, "{imp}");
        assert_eq!(rest, "", "{imp}: stdout must hold only the ready line");
    }
}

/// `--tls --cert-out FILE`: the ready line names the TLS scheme, and FILE holds the
/// certificate authority (PEM) that signed what the server presents; `--cert`/`--key` serve
/// files made elsewhere (here by `--make-cert`), whose chain `--cert-out` then writes.
#[test]
fn tls_ready_line_and_cert_out() {
    let dir = tempfile::tempdir().unwrap();
    for (imp, scheme) in [
        (Impl::Hyper, "https"),
        (Impl::Axum, "https"),
        (Impl::Tungstenite, "wss"),
        (Impl::AxumWs, "wss"),
        (Impl::Tcp, "tls"),
    ] {
        let out = dir.path().join(format!("{imp}.pem"));
        let server = Server::start(&[imp.name(), "--tls", "--cert-out", out.to_str().unwrap()]);
        assert!(
            server.url.starts_with(&format!("{scheme}://127.0.0.1:")),
            "{}",
            server.url
        );
        let pem = std::fs::read_to_string(&out).unwrap();
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE-----"),
            "{imp}: {pem}"
        );
        assert!(
            !pem.contains("PRIVATE KEY"),
            "{imp}: the key must never be written"
        );
        server.signal(Signal::SIGTERM);
        assert_eq!(server.exit().0, 0, "{imp}");
    }
    // `--make-cert DIR` writes an identity for servers that are not ours and exits.
    let made = dir.path().join("made");
    std::fs::create_dir(&made).unwrap();
    let output = Command::new(bin())
        .args(["--make-cert", made.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let d = made.display();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("trust {d}/ca.pem; serve with --cert {d}/cert.pem --key {d}/key.pem\n")
    );
    let (cert, key, out) = (
        made.join("cert.pem"),
        made.join("key.pem"),
        dir.path().join("o.pem"),
    );
    let identity = echo_servers::Identity::from_files(&cert, &key).unwrap();
    assert_ne!(
        std::fs::read_to_string(made.join("ca.pem")).unwrap(),
        identity.chain_pem,
        "the leaf is signed by an authority of its own"
    );
    let server = Server::start(&[
        "tcp",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--cert-out",
        out.to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("tls://"), "{}", server.url);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), identity.chain_pem);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.exit().0, 0);
}

/// SIGINT also stops the server gracefully, with the default (multi-thread) runtime.
#[tokio::test]
async fn sigint_exits_zero() {
    let server = Server::start(&["axum"]);
    let mut client = Client::connect(Impl::Axum, server.addr()).await;
    assert_eq!(client.echo(b"x").await, Echo::Bytes(b"x".to_vec()));
    server.signal(Signal::SIGINT);
    assert_eq!(server.exit().0, 0);
}

/// On SIGTERM a connected WebSocket client receives close 1001 before the process exits 0.
#[tokio::test]
async fn sigterm_sends_going_away() {
    for imp in [Impl::Tungstenite, Impl::AxumWs] {
        let server = Server::start(&[imp.name()]);
        let mut ws = common::ws_connect(&server.url).await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(ws_next(&mut ws).await, Some(Message::text("hello")));
        server.signal(Signal::SIGTERM);
        match ws_next(&mut ws).await {
            Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001, "{imp}"),
            other => panic!("{imp}: expected close 1001, got {other:?}"),
        }
        assert_eq!(ws_next(&mut ws).await, None);
        assert_eq!(server.exit().0, 0, "{imp}");
    }
}

/// `--list` prints one line per implementation: name, protocol, library.
#[test]
fn list() {
    let output = Command::new(bin()).arg("--list").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["hyper", "http"],
            ["axum", "http"],
            ["tungstenite", "websocket"],
            ["axum-ws", "websocket"],
            ["tcp", "tcp"]
        ]
    );
}

/// Bad flags exit 2 and a taken address exits 1, each with a message naming the input.
#[test]
fn bad_input_fails_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 8] = [
        (&["tcp", "--cert", "/nonexistent.pem"], 2, "--key"),
        (
            &["--make-cert", "/nonexistent/dir"],
            1,
            "cannot write the certificate to trust to /nonexistent/dir/ca.pem",
        ),
        (
            &["tcp", "--cert", "/nonexistent.pem", "--key", not_pem],
            1,
            "cannot read --cert file /nonexistent.pem",
        ),
        (
            &["tcp", "--cert", not_pem, "--key", not_pem],
            1,
            "holds no PEM certificate",
        ),
        (&["nginx"], 2, "unknown server implementation `nginx`"),
        (&["tcp", "--threads", "0"], 2, "--threads"),
        (
            &["tcp", "--stall-every", "1s", "--stall-for", "1s"],
            1,
            "shorter than --stall-every",
        ),
        (&["tcp", "--addr", &taken_addr], 1, "cannot listen on"),
    ];
    for (args, code, needle) in cases {
        let output = Command::new(bin()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    drop(taken);
}

/// The processes that `pid`'s threads started.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        children.extend(text.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
    }
    children
}

/// Listening TCP sockets on `port` (IPv4), from /proc/net/tcp.
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).unwrap() == port && fields[3] == "0A"
        })
        .count()
}

/// `--processes 3`: three processes listen on the one address (SO_REUSEPORT), the ready line
/// comes once all do, every connection is echoed, and SIGTERM stops all three with exit 0.
#[tokio::test]
async fn processes_share_one_address() {
    for imp in [Impl::Tcp, Impl::Tungstenite, Impl::Hyper] {
        let server = Server::start(&[imp.name(), "--processes", "3"]);
        let addr = server.addr();
        let copies = children_of(server.child.as_ref().unwrap().id());
        assert_eq!(copies.len(), 2, "{imp}: {copies:?}");
        assert_eq!(listeners_on(addr.port()), 3, "{imp}");
        for i in 0..24u8 {
            let mut client = Client::connect(imp, addr).await;
            assert_eq!(client.echo(&[i; 5]).await, Echo::Bytes(vec![i; 5]), "{imp}");
        }
        server.signal(Signal::SIGTERM);
        let (code, rest) = server.exit();
        assert_eq!((code, rest.as_str()), (0, ""), "{imp}");
        assert_eq!(listeners_on(addr.port()), 0, "{imp}: every process stopped");
    }
}

/// Faults that act across the whole server cannot be shared by processes: refused (exit 2).
#[test]
fn processes_refuse_server_wide_faults() {
    for flags in [
        &["tcp", "--processes", "2", "--broadcast"][..],
        &["tcp", "--processes", "2", "--corrupt-every", "3"],
        &["hyper", "--processes", "2", "--max-rate", "10"],
    ] {
        let output = Command::new(bin()).args(flags).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--processes"),
            "{flags:?}"
        );
    }
}
