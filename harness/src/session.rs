//! One pinned server session, the primitive every measurement stands on — a trial of the
//! matrix, a crosscheck run and `echo-harness exec` alike: start the server pinned to its CPUs
//! in its own process group, wait until it is ready, check one echo through it, bracket the
//! work done against it (CPU, steal, wall time), then stop it and make sure its whole group
//! is gone.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use echobench_core::Payload;
use echobench_core::monitor::{Bracket, Bracketed, CpuOf};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::binaries::Binaries;
use crate::config::ServerSpec;
use crate::cpuset::CpuSet;
use crate::process::{self, Stopped};
use crate::sampler;
use crate::server::{Launch, RunningServer, with_path};
use crate::workload::Workload;

/// The echo checked before any load: one round trip of `size` bytes through the server.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Message size.
    pub size: usize,
    /// HTTP body kind.
    pub payload: Payload,
    /// Longest wait for the connection and for the echo.
    pub timeout: Duration,
    /// The server may announce a non-loopback address.
    pub allow_remote: bool,
}

/// A server that is up and has echoed once.
#[derive(Debug)]
pub struct Session {
    server: RunningServer,
    /// The server group's memory before any load.
    pub idle: sampler::Sample,
}

/// Why a session could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The server did not start or get ready.
    #[error("server did not start: {0}")]
    Start(String),
    /// It started, but the echo check failed.
    #[error("echo check before the load failed: {reason}; server stderr tail:\n{tail}")]
    Check {
        /// What the check saw.
        reason: String,
        /// The server's stderr tail.
        tail: String,
    },
}

/// A command run against a session, and what it cost.
#[derive(Debug)]
pub struct Ran {
    /// Its stdout if it exited 0; otherwise why not (exit status and stderr).
    pub stdout: Result<String, String>,
    /// CPU (the command's, as a reaped child), steal and wall time over its run.
    pub bracket: Bracketed,
    /// The server group's CPU over the command's run (its start and teardown included).
    pub server_cpu: Duration,
    /// The server group's resident memory once it was ready, before any load, in bytes.
    pub server_idle_rss: u64,
    /// The server group's largest resident memory while the command ran, in bytes.
    pub server_peak_rss: u64,
    /// The command's group's largest resident memory (all its processes at once), in bytes.
    pub command_peak_rss: u64,
}

impl Session {
    /// Starts the server of `launch`, waits until it is ready and checks one echo; on any
    /// failure the server is stopped again and the error says why.
    pub async fn start(
        launch: &Launch<'_>,
        check: Check,
        grace: Duration,
    ) -> Result<Session, StartError> {
        let server = RunningServer::start(launch)
            .await
            .map_err(StartError::Start)?;
        let idle = sampler::read_group(server.pgid());
        // A relay that serves no echo is checked with one broadcast instead.
        let checked = if launch.spec.serves(Workload::Echo) {
            echo(&server.url, server.ca.as_deref(), check).await
        } else {
            let url = with_path(&server.url, launch.spec.relay_path());
            relay(&url, server.ca.as_deref(), check).await
        };
        if let Err(reason) = checked {
            let tail = server.stderr_tail();
            server.stop(grace).await;
            return Err(StartError::Check { reason, tail });
        }
        Ok(Session { server, idle })
    }

    /// The URL clients use.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// The URL a cell of `spec`'s server loads: the ready line's for echo, its relay's
    /// (`relay_path` in place of the path) for broadcast.
    pub fn url_for(&self, spec: &ServerSpec, workload: Workload) -> String {
        match workload {
            Workload::Echo => self.server.url.clone(),
            Workload::Broadcast => with_path(&self.server.url, spec.relay_path()),
        }
    }

    /// A TLS server's certificate to trust, for the client's `--cacert`.
    pub fn ca(&self) -> Option<&std::path::Path> {
        self.server.ca.as_deref()
    }

    /// The URL without its path (`http://127.0.0.1:PORT`), for tools that add their own.
    pub fn base_url(&self) -> String {
        let url = self.url();
        url.split_once("://")
            .map_or(url.to_owned(), |(scheme, rest)| {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            })
    }

    /// The server's process group (for sampling its CPU and memory).
    pub fn pgid(&self) -> i32 {
        self.server.pgid()
    }

    /// The server's exit status if it has exited (crashed) by now.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.server.exited()
    }

    /// The last lines of the server's stderr.
    pub fn stderr_tail(&self) -> String {
        self.server.stderr_tail()
    }

    /// Runs `argv` (with `{url}`, `{base}` and, for a TLS server, `{ca}` filled in) pinned to
    /// `cpus` in its own process group, for at most `limit`, and brackets it: its CPU as a
    /// reaped child, the server's CPU, the machine's steal, the wall time. An interrupt stops
    /// it with SIGTERM.
    pub async fn run(
        &self,
        argv: &[String],
        cpus: &CpuSet,
        limit: Duration,
        interrupt: &CancellationToken,
    ) -> Ran {
        let base = self.base_url();
        let ca = self
            .ca()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let argv: Vec<String> = argv
            .iter()
            .map(|a| {
                a.replace("{url}", self.url())
                    .replace("{base}", &base)
                    .replace("{ca}", &ca)
            })
            .collect();
        let server_before = sampler::read_group(self.pgid());
        let done = CancellationToken::new();
        let server_samples = tokio::spawn(sampler::sample_until(self.pgid(), done.clone()));
        let bracket = Bracket::open(CpuOf::Children);
        let (stdout, command_peak_rss) = run_child(&argv, cpus, limit, interrupt).await;
        let bracket = bracket.close();
        done.cancel();
        let server_peak_rss = server_samples
            .await
            .map(|samples| samples.iter().map(|s| s.rss).max().unwrap_or_default())
            .unwrap_or_default();
        let server_cpu = sampler::read_group(self.pgid())
            .cpu
            .saturating_sub(server_before.cpu);
        Ran {
            stdout,
            bracket,
            server_cpu,
            server_idle_rss: self.idle.rss,
            server_peak_rss,
            command_peak_rss,
        }
    }

    /// Stops the server (SIGTERM, SIGKILL after `grace`) and checks its group is gone.
    pub async fn stop(self, grace: Duration) -> Stopped {
        self.server.stop(grace).await
    }

    /// One command against a fresh server, the whole of a crosscheck run or of `exec`:
    /// starts `spec` pinned to `pinning.server_cpus` (stderr to `log`), checks a 32-byte echo,
    /// runs `argv` on `pinning.client_cpus` for at most `limit`, and stops the server again.
    /// Returns the server's URL and what the command printed and cost.
    pub async fn run_once(
        spec: &ServerSpec,
        pinning: &Pinning<'_>,
        log: PathBuf,
        argv: &[String],
        limit: Duration,
        interrupt: &CancellationToken,
    ) -> Result<(String, Ran), StartError> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let launch = Launch {
            spec,
            bins: pinning.bins,
            cpus: pinning.server_cpus,
            ready_timeout: pinning.ready_timeout,
            log,
            base_dir: &cwd,
        };
        let check = Check {
            size: 32,
            payload: spec.payload,
            timeout: Duration::from_secs(10),
            allow_remote: false,
        };
        let grace = Duration::from_secs(5);
        let session = Session::start(&launch, check, grace).await?;
        let ran = session
            .run(argv, pinning.client_cpus, limit, interrupt)
            .await;
        let url = session.url().to_owned();
        session.stop(grace).await;
        Ok((url, ran))
    }
}

/// Where [`Session::run_once`] puts the server and the command.
#[derive(Debug, Clone, Copy)]
pub struct Pinning<'a> {
    /// The echo binaries (`{bin}`).
    pub bins: &'a Binaries,
    /// The server's CPUs.
    pub server_cpus: &'a CpuSet,
    /// The command's CPUs.
    pub client_cpus: &'a CpuSet,
    /// Longest wait for the server's readiness.
    pub ready_timeout: Duration,
}

/// Runs `argv` in a process group of its own; returns its stdout (or why it failed) and the
/// group's largest resident memory, sampled every [`sampler::INTERVAL`].
async fn run_child(
    argv: &[String],
    cpus: &CpuSet,
    limit: Duration,
    interrupt: &CancellationToken,
) -> (Result<String, String>, u64) {
    let done = CancellationToken::new();
    let mut sampling = None;
    let stdout = child_output(argv, cpus, limit, interrupt, |pgid| {
        sampling = Some(tokio::spawn(sampler::sample_until(pgid, done.clone())));
    })
    .await;
    done.cancel();
    let peak = match sampling {
        Some(task) => task
            .await
            .map(|samples| samples.iter().map(|s| s.rss).max().unwrap_or_default())
            .unwrap_or_default(),
        None => 0,
    };
    (stdout, peak)
}

/// Runs `argv` in a process group of its own (`spawned` is told its id) and returns its
/// stdout, or why it failed.
async fn child_output(
    argv: &[String],
    cpus: &CpuSet,
    limit: Duration,
    interrupt: &CancellationToken,
    spawned: impl FnOnce(i32),
) -> Result<String, String> {
    let shown = argv.join(" ");
    let (mut child, pgid) = process::spawn(argv, cpus, Stdio::piped())?;
    spawned(pgid);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read = async {
        let (mut o, mut e) = (String::new(), String::new());
        let out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_string(&mut o).await;
            }
        };
        let err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_string(&mut e).await;
            }
        };
        tokio::join!(out, err);
        (o, e)
    };
    let outcome = tokio::select! {
        finished = tokio::time::timeout(limit, async {
            let (o, e) = read.await;
            (child.wait().await, o, e)
        }) => finished.map_err(|_| format!("`{shown}` did not finish within {}", humantime::format_duration(limit))),
        () = interrupt.cancelled() => Err("interrupted".to_owned()),
    };
    if outcome.is_err() && pgid > 0 {
        process::stop(&mut child, pgid, Duration::from_secs(2)).await;
    }
    match outcome? {
        (Ok(status), stdout, _) if status.success() => Ok(stdout),
        (status, _, stderr) => Err(format!(
            "`{shown}` exited with {}: {}",
            status.map_or_else(|err| err.to_string(), |s| s.to_string()),
            stderr.trim()
        )),
    }
}

/// The settings of the one-message checks before the load.
fn check_config(url: &str, ca: Option<&std::path::Path>, check: Check) -> echobench_core::Config {
    echobench_core::Config {
        connections: 1,
        total: Some(1),
        warmup: Duration::ZERO,
        duration: check.timeout,
        size: check.size,
        threads: 1,
        timeout: check.timeout,
        connect_timeout: check.timeout,
        allow_remote: check.allow_remote,
        payload: check.payload,
        tls: ca.map(|ca| echobench_core::config::TlsConfig {
            cacert: Some(ca.to_owned()),
            ..Default::default()
        }),
        ..echobench_core::Config::new(url)
    }
}

/// One echo through the server before the load: connect, send, verify.
async fn echo(url: &str, ca: Option<&std::path::Path>, check: Check) -> Result<(), String> {
    let config = check_config(url, ca, check);
    let report = echo_client::run::run(config, echo_client::run::RunOptions::default())
        .await
        .map_err(|err| err.to_string())?;
    if report.summary.round_trips == 1 {
        return Ok(());
    }
    Err(report
        .errors
        .kinds
        .values()
        .find_map(|e| e.samples.first().cloned())
        .unwrap_or_else(|| "no echo".to_owned()))
}

/// A relay's check before the load: two subscribers, one publishing for a moment; every
/// message must reach both.
async fn relay(url: &str, ca: Option<&std::path::Path>, check: Check) -> Result<(), String> {
    let config = echobench_core::Config {
        connections: 2,
        total: None,
        rate: Some(100.0),
        duration: Duration::from_millis(100),
        size: check.size.max(echobench_core::broadcast::MIN_SIZE),
        broadcast: Some(echobench_core::broadcast::BroadcastConfig { publishers: 1 }),
        warmup_timeout: check.timeout,
        ..check_config(url, ca, check)
    };
    let report = echo_client::run::run(config, echo_client::run::RunOptions::default())
        .await
        .map_err(|err| err.to_string())?;
    match report.broadcast {
        Some(b) if b.counts.published > 0 && b.counts.delivered == b.counts.deliveries_expected => {
            Ok(())
        }
        Some(b) => Err(format!(
            "the relay delivered {} of {} messages ({} subscribers dropped)",
            b.counts.delivered, b.counts.deliveries_expected, b.counts.subscribers_dropped
        )),
        None => Err("no broadcast report".to_owned()),
    }
}
