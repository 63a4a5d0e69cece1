//! The coordinator: checks the target, starts the workers, assembles their seconds into the
//! [`Timeline`] (feeding the progress line and the HDR interval log as seconds complete),
//! brackets the measured window with the process's CPU and the machine's steal, merges the
//! workers' measurements exactly, and derives the [`Report`] from the result.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use echobench_core::config::{Config, ConfigError};
use echobench_core::error::ErrorLog;
use echobench_core::format::count;
use echobench_core::measurement::{Measurement, Second};
use echobench_core::monitor::{self, Bracket, CpuOf};
use echobench_core::report::{Context, Report, TargetInfo, Tool};
use echobench_core::slo::{Slo, Window};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use crate::error::ErrorKind;
use crate::export::hdrlog::HdrLog;
use crate::progress::LiveProgress;
use crate::protocol::Connection;
use crate::protocol::http::HttpConnection;
use crate::protocol::tcp::TcpConnection;
use crate::protocol::ws::WsConnection;
use crate::quota;
use crate::target::{Protocol, Target, TargetError};
use crate::timeline::Timeline;
use crate::worker::{self, Event, Finished, Share, Timing};

/// How a run is observed, beyond its [`Config`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a live progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Write an HdrHistogram interval log here, one interval per second.
    pub hdr_log: Option<PathBuf>,
    /// Cancel to stop the run early; the report then covers what ran and says `interrupted`.
    pub interrupt: Option<CancellationToken>,
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL is unusable or refused.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The target did not answer the check made before the load starts.
    #[error("cannot reach {url}: {reason}. {hint}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the connection attempt said.
        reason: String,
        /// What to check, which depends on how far the attempt got.
        hint: &'static str,
    },
    /// The warmup ran out of time before every connection had opened once.
    #[error("only {opened} of {wanted} connections opened within --warmup-timeout {}{}; the server may cap its connections or its accept backlog, or be too slow to accept them: pace them with --connect-rate, lower -c, or raise --warmup-timeout", humantime::format_duration(*within), errors_in_brief(errors))]
    Ramp {
        /// Virtual clients that connected at least once.
        opened: u32,
        /// `-c`.
        wanted: u32,
        /// `--warmup-timeout`.
        within: Duration,
        /// What the connection attempts ran into meanwhile.
        errors: ErrorLog,
    },
    /// The machine could not run the workers (threads, runtimes, files).
    #[error("{0}")]
    Setup(String),
}

/// `(errors: connect_timeout 3,104 "connection timed out", ...)`, or nothing.
fn errors_in_brief(errors: &ErrorLog) -> String {
    if errors.kinds.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = errors
        .kinds
        .iter()
        .map(|(kind, entry)| {
            let sample = entry
                .samples
                .first()
                .map_or(String::new(), |s| format!(" \"{s}\""));
            format!("{} {}{sample}", kind.name(), count(entry.count))
        })
        .collect();
    format!(" (errors meanwhile: {})", kinds.join(", "))
}

/// Runs the load described by `config` and reports what it measured. Errors during the load
/// are data in the report; only an unusable config or target, or an unreachable server at the
/// start, is an error here.
pub async fn run(config: Config, options: RunOptions) -> Result<Report, RunError> {
    config.validate()?;
    let target = Target::for_config(&config)?;
    check_open_files(config.peak_connections())?;
    preflight(&target, &config).await?;
    if let Some(at) = config.start_at {
        wait_for_start(at, config.warmup, options.interrupt.as_ref()).await?;
    }
    if config.broadcast.is_some() {
        return crate::broadcast::run(config, target, options).await;
    }
    match target.protocol {
        Protocol::Http => drive::<HttpConnection>(config, target, options).await,
        Protocol::WebSocket => drive::<WsConnection>(config, target, options).await,
        Protocol::Tcp => drive::<TcpConnection>(config, target, options).await,
    }
}

/// `--start-at`: sleeps until `warmup` before `at`, when the load starts (at once if that has
/// passed: the window then opens late, and the report says by how much). An interrupt ends
/// the wait and the run goes on to report an empty, interrupted window.
async fn wait_for_start(
    at: SystemTime,
    warmup: Duration,
    interrupt: Option<&CancellationToken>,
) -> Result<(), RunError> {
    let ahead = at.duration_since(SystemTime::now()).unwrap_or_default();
    if ahead > echobench_core::shard::MAX_START_AHEAD {
        return Err(RunError::Config(ConfigError::Invalid(format!(
            "--start-at is {} away, more than {}: is it in seconds since the Unix epoch (date +%s)?",
            humantime::format_duration(Duration::from_secs(ahead.as_secs())),
            humantime::format_duration(echobench_core::shard::MAX_START_AHEAD)
        ))));
    }
    let lead = ahead.saturating_sub(warmup);
    if lead.is_zero() {
        if ahead < warmup {
            tracing::warn!(short_by = ?(warmup - ahead), "--start-at leaves less than --warmup: the window may open late");
        }
        return Ok(());
    }
    let sleep = tokio::time::sleep(lead);
    match interrupt {
        Some(interrupt) => tokio::select! {
            () = sleep => {}
            () = interrupt.cancelled() => {}
        },
        None => sleep.await,
    }
    Ok(())
}

/// [`run`] on a runtime of its own, for callers that are not async.
pub fn run_blocking(config: Config, options: RunOptions) -> Result<Report, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| RunError::Setup(format!("cannot start a tokio runtime: {err}")))?;
    runtime.block_on(run(config, options))
}

/// Open files a process keeps for its runtime and output files beside its connections.
const OPEN_FILE_MARGIN: u64 = 64;

/// The most connections one process may hold: its hard open-file limit less a margin
/// (`None` where it cannot be read).
pub fn connections_per_process() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    Some(hard.saturating_sub(OPEN_FILE_MARGIN))
}

/// Raises the soft open-file limit to the hard one and checks that every connection (plus a
/// margin for the runtime and output files) fits; otherwise connects would fail mid-run with
/// `EMFILE`, which would be reported as server errors.
fn check_open_files(connections: u32) -> Result<(), RunError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const MARGIN: u64 = OPEN_FILE_MARGIN;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    if u64::from(connections) + MARGIN > limit {
        return Err(RunError::Config(ConfigError::Invalid(format!(
            "-c {connections} needs {} open files but this process may have {limit} (ulimit -n); lower --connections, raise the hard limit, or split the load over worker processes with --processes (or hosts with --shard)",
            u64::from(connections) + MARGIN
        ))));
    }
    Ok(())
}

/// One connection (and handshake) before the load, so a wrong URL fails fast and clearly.
async fn preflight(target: &Target, config: &Config) -> Result<(), RunError> {
    let unreachable = |reason: String, hint| RunError::Unreachable {
        url: target.url.clone(),
        reason,
        hint,
    };
    let attempt = async {
        match target.protocol {
            Protocol::Http => HttpConnection::connect(target, config).await.map(drop),
            Protocol::WebSocket => WsConnection::connect(target, config).await.map(drop),
            Protocol::Tcp => TcpConnection::connect(target, config).await.map(drop),
        }
    };
    match timeout(config.connect_timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(unreachable(failure.to_string(), hint(failure.kind()))),
        Err(_) => Err(unreachable(
            format!(
                "no connection within --connect-timeout {}",
                humantime::format_duration(config.connect_timeout)
            ),
            "Is the server running, and is it accepting connections?",
        )),
    }
}

/// What to check when the connection before the load failed in the way `kind` says.
fn hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout | ErrorKind::ConnectFailed => {
            "Is the server running and listening there?"
        }
        ErrorKind::HandshakeFailed => {
            "The server accepted the connection but did not complete the WebSocket handshake: is it a WebSocket server, and is the path right?"
        }
        ErrorKind::TlsFailed => {
            "The TLS handshake failed: check --cacert (or --insecure), that the URL's host is a name the certificate is for, and that the server serves TLS there."
        }
        _ => {
            "The server answered, but not as an echo server of this protocol: check the URL's scheme and path."
        }
    }
}

/// Splits the clients over the workers (round-robin) and, with `--total`, the quota too
/// ([`quota::split`]).
fn shares(config: &Config, threads: usize) -> Vec<Share> {
    let mut shares: Vec<Share> = (0..threads)
        .map(|id| Share {
            id,
            clients: Vec::new(),
            quota: None,
        })
        .collect();
    for client in 0..config.peak_connections() {
        shares[client as usize % threads].clients.push(client);
    }
    if let Some(total) = config.total {
        let clients: Vec<usize> = shares.iter().map(|s| s.clients.len()).collect();
        for (share, quota) in
            shares
                .iter_mut()
                .zip(quota::split(total, config.roundtrips, &clients))
        {
            share.quota = Some(quota);
        }
    }
    shares
}

/// `--slo-abort`: judges each complete second and trips once an objective has been breached
/// for the configured time without a break.
struct SloGuard {
    slo: Slo,
    offered: Option<f64>,
    after: Duration,
    breached_for: Duration,
    tripped: bool,
}

impl SloGuard {
    fn second(&mut self, second: &Second) {
        let held = self
            .slo
            .judge(Window::from(second), self.offered)
            .iter()
            .all(|check| check.met);
        self.breached_for = if held {
            Duration::ZERO
        } else {
            self.breached_for + second.duration
        };
        if self.breached_for >= self.after && !self.tripped {
            self.tripped = true;
            tracing::info!(breached_for = ?self.breached_for, "--slo-abort: stopping the run");
        }
    }
}

/// Where complete seconds go while the run is going.
struct Sinks {
    hdr_log: Option<HdrLog>,
    progress: LiveProgress,
    guard: Option<SloGuard>,
}

impl Sinks {
    fn seconds(&mut self, seconds: &[Second]) {
        for second in seconds {
            if let Some(guard) = &mut self.guard {
                guard.second(second);
            }
            if let Some(log) = &mut self.hdr_log
                && let Err(err) = log.interval(
                    second.index,
                    second.duration,
                    &second.round_trip,
                    second.corrected.as_ref(),
                )
            {
                tracing::warn!(%err, "could not write to the hdr log");
            }
            self.progress.second(
                second.index,
                second.round_trips,
                second.errors,
                second.duration,
            );
        }
    }
}

async fn drive<C: Connection + 'static>(
    config: Config,
    target: Target,
    options: RunOptions,
) -> Result<Report, RunError> {
    let threads = config
        .threads
        .min(config.peak_connections() as usize)
        .max(1);
    let config = Arc::new(config);
    let target = Arc::new(target);
    let hdr_log_error = |path: &std::path::Path, err| {
        RunError::Setup(format!("cannot write --hdr-log {}: {err}", path.display()))
    };
    // Created now so that a bad path fails before the load; begun again when the window opens.
    let mut hdr_log = match &options.hdr_log {
        Some(path) => {
            Some(HdrLog::create(path, SystemTime::now()).map_err(|e| hdr_log_error(path, e))?)
        }
        None => None,
    };

    let start = Instant::now();
    // `--start-at`: the window opens at that instant (by this machine's clock), or once every
    // connection has opened if that is later.
    let start_at = config
        .start_at
        .map(|at| start + at.duration_since(SystemTime::now()).unwrap_or_default());
    let (window_tx, window_rx) = watch::channel(config.warmup.is_zero().then_some(start));
    let opened = Arc::new(AtomicU32::new(0));
    let timing = Timing {
        start,
        window: window_rx,
        duration: config.duration,
        opened: Arc::clone(&opened),
    };
    let stop = CancellationToken::new();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(threads);
    for share in shares(&config, threads) {
        let handle = worker::spawn::<C>(
            share,
            Arc::clone(&config),
            Arc::clone(&target),
            timing.clone(),
            stop.clone(),
            events_tx.clone(),
        )
        .map_err(|err| RunError::Setup(format!("cannot start a worker thread: {err}")))?;
        handles.push(handle);
    }
    drop(events_tx);
    tracing::info!(
        url = %target.url,
        connections = config.connections,
        threads,
        "load started"
    );

    drop(timing);
    let mut sinks = Sinks {
        hdr_log: None,
        progress: LiveProgress::new(options.progress, &config),
        guard: config
            .slo
            .clone()
            .zip(config.slo_abort)
            .map(|(slo, after)| SloGuard {
                slo,
                offered: config.rate,
                after,
                breached_for: Duration::ZERO,
                tripped: false,
            }),
    };
    let mut slo_aborted = false;
    let interrupt = options.interrupt.unwrap_or_default();
    let mut interrupted = false;
    let mut window_start = config.warmup.is_zero().then_some(start);
    let mut window = Bracket::open(CpuOf::Process);
    if window_start.is_some() {
        sinks.hdr_log = hdr_log.take();
    }
    // The warmup counts from the moment every connection has opened: the ramp, then
    // `--warmup` of the full load, so the window starts steady.
    let mut all_open_at: Option<Instant> = None;
    let ramp_deadline = start + config.warmup_timeout;
    // While the warmup runs, look every few milliseconds (every one to open a --start-at
    // window on time).
    let mut ramp_check = tokio::time::interval(Duration::from_millis(if start_at.is_some() {
        1
    } else {
        5
    }));
    let mut ramp_failed: Option<u32> = None;
    let mut timeline = Timeline::new(threads);
    let mut finished: Vec<Finished> = Vec::with_capacity(threads);
    let mut done = 0;
    let mut failure: Option<String> = None;
    while done < threads {
        tokio::select! {
            _ = ramp_check.tick(), if window_start.is_none() && ramp_failed.is_none() => {
                let now = Instant::now();
                if all_open_at.is_none() && opened.load(Ordering::Relaxed) >= config.connections {
                    all_open_at = Some(now);
                    tracing::info!(ramp = ?now - start, "every connection open");
                }
                let opens_at = |open: Instant| start_at.map_or(open + config.warmup, |at| at.max(open));
                match all_open_at {
                    Some(open) if now >= opens_at(open) => {
                        window_start = Some(now);
                        let _ = window_tx.send(Some(now));
                        window = Bracket::open(CpuOf::Process);
                        if let (Some(path), Some(early)) = (&options.hdr_log, hdr_log.take()) {
                            // Closed (and flushed) first, or its buffered header would land
                            // over the new one's.
                            drop(early);
                            sinks.hdr_log = Some(
                                HdrLog::create(path, SystemTime::now())
                                    .map_err(|e| hdr_log_error(path, e))?,
                            );
                        }
                    }
                    None if now >= ramp_deadline => {
                        ramp_failed = Some(opened.load(Ordering::Relaxed));
                        stop.cancel();
                    }
                    _ => {}
                }
            }
            () = interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                stop.cancel();
            }
            event = events.recv() => match event {
                Some(Event::Second { worker, second }) => {
                    sinks.seconds(timeline.add(worker, &second));
                    if !slo_aborted && sinks.guard.as_ref().is_some_and(|g| g.tripped) {
                        slo_aborted = true;
                        stop.cancel();
                    }
                }
                Some(Event::Done { worker, result }) => {
                    finished.push(*result);
                    done += 1;
                    sinks.seconds(timeline.stopped(worker));
                }
                Some(Event::Failed { worker, reason }) => {
                    failure.get_or_insert(format!("worker {worker}: {reason}"));
                    stop.cancel();
                    done += 1;
                }
                None => break,
            },
        }
    }
    let bracket = window.close();
    let timeline = timeline.finish();
    sinks.progress.finish();
    for handle in handles {
        let _ = handle.join();
    }
    if let Some(reason) = failure {
        return Err(RunError::Setup(reason));
    }
    if let Some(opened) = ramp_failed {
        let mut errors = ErrorLog::default();
        for f in &finished {
            if let Some(e) = &f.warmup_errors {
                errors.merge(e);
            }
        }
        return Err(RunError::Ramp {
            opened,
            wanted: config.connections,
            within: config.warmup_timeout,
            errors,
        });
    }
    if let Some(log) = sinks.hdr_log.as_mut() {
        log.finish()
            .map_err(|err| RunError::Setup(format!("cannot write the --hdr-log: {err}")))?;
    }

    // Interrupted during the warmup, nothing was measured: the window is empty.
    let window_start = window_start.unwrap_or_else(Instant::now);
    let stopped = finished
        .iter()
        .map(|f| f.stopped_at)
        .max()
        .unwrap_or(window_start)
        .max(window_start);
    let mut workers = finished.into_iter().map(|f| f.measurement);
    let Some(mut measurement) = workers.next() else {
        return Err(RunError::Setup("no worker reported".to_owned()));
    };
    for other in workers {
        measurement.merge(&other);
    }
    // The workers' clocks measured their own threads; the window, the process's CPU and the
    // steal are the coordinator's, read around the whole measured window.
    let allowed_cpus = monitor::allowed_cpus();
    measurement.started_at = bracket.started;
    measurement.measured = stopped.saturating_duration_since(window_start);
    measurement.interrupted = interrupted;
    measurement.slo_aborted = slo_aborted;
    measurement.timeline = timeline;
    offer(&config, &mut measurement.timeline);
    measurement.cpu.threads = threads;
    measurement.cpu.capacity_cpus = threads.min(allowed_cpus.len().max(1)) as f64;
    measurement.cpu.allowed_cpus = allowed_cpus;
    measurement.cpu.process = bracket.cpu;
    measurement.steal_percent = bracket.steal_percent;
    Ok(report(&config, &target, threads, &measurement))
}

/// Open loop: what the schedule offered in each second of the timeline — the rate, or with
/// `--stages` the integral of their rate over the second.
fn offer(config: &Config, timeline: &mut [Second]) {
    let Some(rate) = config.rate else {
        return;
    };
    let stages = config.resolved_stages();
    for second in timeline {
        let start = Duration::from_secs(u64::from(second.index));
        let end = start + second.duration;
        second.offered = Some(match &stages {
            Some(stages) => {
                echobench_core::stages::offered_until(stages, end)
                    - echobench_core::stages::offered_until(stages, start)
            }
            None => rate * second.duration.as_secs_f64(),
        });
    }
}

/// The report of a finished run.
pub(crate) fn report(config: &Config, target: &Target, threads: usize, m: &Measurement) -> Report {
    Report::derive(
        Context {
            tool: Tool::this(),
            config: Config {
                threads,
                ..config.clone()
            },
            target: TargetInfo {
                url: target.url.clone(),
                protocol: target.protocol,
                addr: target.addr.to_string(),
            },
        },
        m,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(connections: u32, roundtrips: u64, total: Option<u64>) -> Config {
        Config {
            connections,
            roundtrips,
            total,
            warmup: Duration::ZERO,
            ..Config::new("http://127.0.0.1:1/echo")
        }
    }

    /// Clients go round-robin; the quota splits in whole connections so the total and the
    /// number of connections do not depend on the thread count.
    #[test]
    fn shares_split_clients_and_quota() {
        let cases: [(u32, u64, u64, usize, &[u64]); 5] = [
            (4, 10, 400, 2, &[200, 200]),
            (4, 10, 400, 3, &[200, 100, 100]),
            (3, 10, 100, 2, &[60, 40]),
            (3, 10, 95, 2, &[60, 35]),
            (5, 0, 11, 2, &[6, 5]),
        ];
        for (connections, roundtrips, total, threads, quotas) in cases {
            let shares = shares(&config(connections, roundtrips, Some(total)), threads);
            let got: Vec<u64> = shares.iter().map(|p| p.quota.unwrap()).collect();
            assert_eq!(
                got, quotas,
                "c={connections} r={roundtrips} n={total} t={threads}"
            );
            let clients: usize = shares.iter().map(|p| p.clients.len()).sum();
            assert_eq!(clients, connections as usize);
        }
        let free = shares(&config(5, 0, None), 2);
        assert_eq!(free[0].clients, [0, 2, 4]);
        assert_eq!(free[1].clients, [1, 3]);
        assert!(free.iter().all(|p| p.quota.is_none()));
    }
}
