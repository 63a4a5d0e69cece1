//! Launching one server for one run: placeholders filled in, started pinned in its own process
//! group with stderr to a log file, and waited for until it is ready — by its `listening <URL>`
//! line or by its port accepting connections.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

use crate::binaries::Binaries;
use crate::config::{Readiness, ServerSpec};
use crate::cpuset::CpuSet;
use crate::process::{self, Stopped};

/// How many lines of a server's stderr go into a failure message.
const TAIL_LINES: usize = 15;

/// Everything needed to start a server.
#[derive(Debug)]
pub struct Launch<'a> {
    /// Its config entry.
    pub spec: &'a ServerSpec,
    /// Where the echo binaries are (`{bin}`).
    pub bins: &'a Binaries,
    /// Its CPUs (`{threads}` is their number).
    pub cpus: &'a CpuSet,
    /// Longest wait for readiness.
    pub ready_timeout: Duration,
    /// Its stderr goes here.
    pub log: PathBuf,
    /// Relative commands and `cwd` are resolved against this folder.
    pub base_dir: &'a Path,
}

/// A server that is up.
#[derive(Debug)]
pub struct RunningServer {
    child: Child,
    pgid: i32,
    /// The URL clients use.
    pub url: String,
    /// A TLS server's certificate to trust (`{ca}`), written before it was ready.
    pub ca: Option<PathBuf>,
    /// The private key the harness made for it (`{key}`), deleted once it has stopped.
    key: Option<PathBuf>,
    log: PathBuf,
}

impl RunningServer {
    /// Starts the server and waits until it is ready; the error explains why not, with the
    /// tail of its stderr.
    pub async fn start(launch: &Launch<'_>) -> Result<RunningServer, String> {
        let spec = launch.spec;
        let port = match spec.ready {
            Readiness::Line => 0,
            Readiness::Port => {
                free_port().map_err(|err| format!("cannot find a free port: {err}"))?
            }
        };
        let argv = substitute(&spec.command, launch, port);
        let log = std::fs::File::create(&launch.log)
            .map_err(|err| format!("cannot create {}: {err}", launch.log.display()))?;
        let mut command = process::command(&argv, launch.cpus)
            .map_err(|err| format!("cannot prepare `{}`: {err}", argv.join(" ")))?;
        command
            .envs(&spec.env)
            .current_dir(
                spec.cwd
                    .as_ref()
                    .map_or_else(|| launch.base_dir.to_owned(), |c| launch.base_dir.join(c)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let given = |a: &String| a.contains("{cert}") || a.contains("{key}");
        let key = if spec.tls && spec.command.iter().any(given) {
            let files = pem_files(launch);
            echo_servers::Identity::generate(&[])
                .and_then(|identity| identity.write(&files))
                .map_err(|err| format!("cannot give the server its {{cert}} and {{key}}: {err}"))?;
            Some(files.key)
        } else {
            None
        };
        let spawned = command.spawn();
        if spawned.is_err() {
            remove_key(key.as_deref());
        }
        let mut child =
            spawned.map_err(|err| format!("cannot start `{}`: {err}", argv.join(" ")))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| "the server exited at once".to_owned())?;
        let ready =
            tokio::time::timeout(launch.ready_timeout, wait_ready(&mut child, spec, port)).await;
        let failure = match ready {
            Ok(Ok(url)) => {
                let ca = spec.tls.then(|| ca_file(launch));
                if let Some(path) = ca.as_ref().filter(|p| !p.is_file()) {
                    let _ = process::stop(&mut child, pgid, Duration::from_secs(2)).await;
                    return Err(format!(
                        "a tls = true server must write the certificate to trust to {{ca}} before it is ready, and {} does not exist (add --cert-out {{ca}} to its command, or give it --cert {{cert}} --key {{key}}, which the harness makes)",
                        path.display()
                    ));
                }
                return Ok(RunningServer {
                    child,
                    pgid,
                    url,
                    ca,
                    key,
                    log: launch.log.clone(),
                });
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!(
                "not ready within {} ({})",
                humantime::format_duration(launch.ready_timeout),
                match spec.ready {
                    Readiness::Line => "no `listening <URL>` line on stdout",
                    Readiness::Port => "the port never accepted a connection",
                }
            ),
        };
        let stopped = process::stop(&mut child, pgid, Duration::from_secs(2)).await;
        remove_key(key.as_deref());
        let status = stopped
            .exited_early
            .map(|s| format!(" (exit {s})"))
            .unwrap_or_default();
        Err(format!(
            "{failure}{status}; stderr tail:\n{}",
            process::tail(&launch.log, TAIL_LINES)
        ))
    }

    /// The server's process group (its pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether the server has exited on its own (a crash), with its status.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The tail of its stderr.
    pub fn stderr_tail(&self) -> String {
        process::tail(&self.log, TAIL_LINES)
    }

    /// Stops it and its group, and deletes the private key the harness made for it (results
    /// are published; a throwaway key has no business among them).
    pub async fn stop(mut self, grace: Duration) -> Stopped {
        let stopped = process::stop(&mut self.child, self.pgid, grace).await;
        remove_key(self.key.as_deref());
        stopped
    }
}

fn remove_key(key: Option<&Path>) {
    if let Some(key) = key
        && let Err(err) = std::fs::remove_file(key)
    {
        tracing::warn!(key = %key.display(), %err, "could not delete the server's private key");
    }
}

/// A file beside the server's log, as an absolute path (the server runs in its config's
/// folder, not the harness's).
fn beside_log(launch: &Launch<'_>, extension: &str) -> PathBuf {
    let file = launch.log.with_extension(extension);
    match std::env::current_dir() {
        Ok(cwd) if file.is_relative() => cwd.join(file),
        _ => file,
    }
}

/// Where a TLS server writes the certificate its clients trust (`{ca}`), or where the harness
/// writes it for a server given `{cert}` and `{key}`.
fn ca_file(launch: &Launch<'_>) -> PathBuf {
    beside_log(launch, "ca.pem")
}

/// The identity the harness makes for a TLS server that takes `{cert}` and `{key}` (a peer,
/// or any server that does not make its own), beside its log.
fn pem_files(launch: &Launch<'_>) -> echo_servers::PemFiles {
    echo_servers::PemFiles {
        ca: ca_file(launch),
        cert: beside_log(launch, "cert.pem"),
        key: beside_log(launch, "key.pem"),
    }
}

/// Fills in `{bin}`, `{addr}`, `{host}`, `{port}`, `{threads}`, `{ca}`, `{cert}` and `{key}`;
/// a relative program path with a slash is made absolute against the base folder.
fn substitute(command: &[String], launch: &Launch<'_>, port: u16) -> Vec<String> {
    let ca = ca_file(launch).display().to_string();
    let pem = pem_files(launch);
    let (cert, key) = (
        pem.cert.display().to_string(),
        pem.key.display().to_string(),
    );
    let bin = launch.bins.dir.display().to_string();
    let addr = format!("127.0.0.1:{port}");
    let threads = launch.cpus.len().max(1).to_string();
    let mut argv: Vec<String> = command
        .iter()
        .map(|arg| {
            arg.replace("{bin}", &bin)
                .replace("{addr}", &addr)
                .replace("{host}", "127.0.0.1")
                .replace("{port}", &port.to_string())
                .replace("{threads}", &threads)
                .replace("{ca}", &ca)
                .replace("{cert}", &cert)
                .replace("{key}", &key)
        })
        .collect();
    if let Some(program) = argv.first_mut() {
        let path = Path::new(program.as_str());
        if path.is_relative() && program.contains('/') {
            *program = launch.base_dir.join(path).display().to_string();
        }
    }
    argv
}

/// `url` with its path replaced by `path` (when given).
pub(crate) fn with_path(url: &str, path: Option<&str>) -> String {
    match (path, url.split_once("://")) {
        (Some(path), Some((scheme, rest))) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}{path}")
        }
        _ => url.to_owned(),
    }
}

/// A port that was free a moment ago (for servers that must be told their port).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(child: &mut Child, spec: &ServerSpec, port: u16) -> Result<String, String> {
    let Some(stdout) = child.stdout.take() else {
        return Err("no stdout".to_owned());
    };
    match spec.ready {
        Readiness::Line => {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(url) = line.trim().strip_prefix("listening ") {
                            let url = with_path(url.trim(), spec.path.as_deref());
                            // Keep reading stdout so the server never blocks on a full pipe.
                            tokio::spawn(async move {
                                while let Ok(Some(_)) = lines.next_line().await {}
                            });
                            return Ok(url);
                        }
                    }
                    Ok(None) | Err(_) => {
                        let status = child.wait().await.ok();
                        return Err(format!(
                            "exited before printing `listening <URL>`{}",
                            status.map(|s| format!(" ({s})")).unwrap_or_default()
                        ));
                    }
                }
            }
        }
        Readiness::Port => {
            tokio::spawn(async move {
                let mut stdout = stdout;
                let mut sink = vec![0u8; 4096];
                while matches!(stdout.read(&mut sink).await, Ok(n) if n > 0) {}
            });
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("exited before accepting connections ({status})"));
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    let protocol = spec.protocol;
                    let path = spec.path.as_deref().unwrap_or(protocol.echo_path());
                    return Ok(format!("{}://{addr}{path}", protocol.scheme()));
                }
                // Polling is the only way to see a port open; 20 ms keeps it cheap and prompt.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configured path replaces the ready line's.
    #[test]
    fn path_override() {
        assert_eq!(
            with_path("http://127.0.0.1:9/echo", Some("/json")),
            "http://127.0.0.1:9/json"
        );
        assert_eq!(with_path("ws://[::1]:9/ws", Some("/")), "ws://[::1]:9/");
        assert_eq!(with_path("tcp://127.0.0.1:9", None), "tcp://127.0.0.1:9");
    }
}
