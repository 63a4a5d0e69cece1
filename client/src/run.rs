//! The coordinator: checks the target, starts the workers, merges their seconds into the
//! timeline (and the HDR interval log) as they complete, takes the CPU and steal readings that
//! bracket the measured window, and builds the [`Report`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::export::hdrlog::HdrLog;
use crate::latency::{self, Percentiles};
use crate::monitor::{self, CpuTimes};
use crate::progress::Progress;
use crate::protocol::Connection;
use crate::protocol::http::HttpConnection;
use crate::protocol::tcp::TcpConnection;
use crate::protocol::ws::WsConnection;
use crate::recorder::{Totals, add};
use crate::report::{
    ClientLoad, Flags, Histograms, Latency, Report, SCHEMA_VERSION, Second, Summary, TargetInfo,
    Tool, thresholds,
};
use crate::target::{Protocol, Target, TargetError};
use crate::worker::{self, Event, Finished, Plan, Timing};

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
    #[error("cannot reach {url}: {reason}. Is the server running and listening there?")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The machine could not run the workers (threads, runtimes, files).
    #[error("{0}")]
    Setup(String),
}

/// Runs the load described by `config` and reports what it measured. Errors during the load
/// are data in the report; only an unusable config or target, or an unreachable server at the
/// start, is an error here.
pub async fn run(config: Config, options: RunOptions) -> Result<Report, RunError> {
    config.validate()?;
    let target = Target::parse(&config.url, config.allow_remote)?;
    check_open_files(config.connections)?;
    preflight(&target, &config).await?;
    match target.protocol {
        Protocol::Http => drive::<HttpConnection>(config, target, options).await,
        Protocol::WebSocket => drive::<WsConnection>(config, target, options).await,
        Protocol::Tcp => drive::<TcpConnection>(config, target, options).await,
    }
}

/// [`run`] on a runtime of its own, for callers that are not async.
pub fn run_blocking(config: Config, options: RunOptions) -> Result<Report, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| RunError::Setup(format!("cannot start a tokio runtime: {err}")))?;
    runtime.block_on(run(config, options))
}

/// Raises the soft open-file limit to the hard one and checks that every connection (plus a
/// margin for the runtime and output files) fits; otherwise connects would fail mid-run with
/// `EMFILE`, which would be reported as server errors.
fn check_open_files(connections: u32) -> Result<(), RunError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const MARGIN: u64 = 64;
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
            "-c {connections} needs {} open files but this process may have {limit} (ulimit -n); lower --connections or raise the hard limit",
            u64::from(connections) + MARGIN
        ))));
    }
    Ok(())
}

/// One connection (and handshake) before the load, so a wrong URL fails fast and clearly.
async fn preflight(target: &Target, config: &Config) -> Result<(), RunError> {
    let unreachable = |reason: String| RunError::Unreachable {
        url: target.url.clone(),
        reason,
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
        Ok(Err(failure)) => Err(unreachable(failure.to_string())),
        Err(_) => Err(unreachable(format!(
            "no connection within --connect-timeout {}",
            humantime::format_duration(config.connect_timeout)
        ))),
    }
}

/// Splits the clients over the workers (round-robin) and, with `--total`, the quota too: in
/// whole connections' worth (`roundtrips` each) when connections are bounded, so the number of
/// connections opened is `ceil(total / roundtrips)` however many threads there are.
fn plans(config: &Config, threads: usize) -> Vec<Plan> {
    let mut plans: Vec<Plan> = (0..threads)
        .map(|id| Plan {
            id,
            clients: Vec::new(),
            quota: None,
        })
        .collect();
    for client in 0..config.connections {
        plans[client as usize % threads].clients.push(client);
    }
    if let Some(total) = config.total {
        let unit = config.roundtrips.max(1);
        let units = total.div_ceil(unit);
        let connections = u64::from(config.connections);
        let mut assigned_units = 0;
        let mut assigned = 0;
        for (i, plan) in plans.iter_mut().enumerate() {
            let clients = plan.clients.len() as u64;
            let mut share = units * clients / connections;
            if i + 1 == threads {
                share = units - assigned_units;
            }
            assigned_units += share;
            let tickets = (share * unit).min(total - assigned);
            assigned += tickets;
            plan.quota = Some(tickets);
        }
    }
    plans
}

/// A second being assembled from the workers' intervals.
struct PendingSecond {
    /// Which workers have reported this second.
    reported: Vec<bool>,
    duration: Duration,
    round_trips: u64,
    errors: u64,
    round_trip: Histogram<u64>,
    corrected: Option<Histogram<u64>>,
}

async fn drive<C: Connection + 'static>(
    config: Config,
    target: Target,
    options: RunOptions,
) -> Result<Report, RunError> {
    let threads = config.threads.min(config.connections as usize).max(1);
    let open_loop = config.rate.is_some();
    let config = Arc::new(config);
    let target = Arc::new(target);
    let mut hdr_log = match &options.hdr_log {
        Some(path) => Some(
            HdrLog::create(path, SystemTime::now() + config.warmup).map_err(|err| {
                RunError::Setup(format!("cannot write --hdr-log {}: {err}", path.display()))
            })?,
        ),
        None => None,
    };

    let start = Instant::now();
    let timing = Timing {
        start,
        warmup_end: start + config.warmup,
        deadline: start + config.warmup + config.duration,
    };
    let stop = CancellationToken::new();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(threads);
    for plan in plans(&config, threads) {
        let handle = worker::spawn::<C>(
            plan,
            Arc::clone(&config),
            Arc::clone(&target),
            timing,
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

    let progress = Progress::new(options.progress, &config);
    let interrupt = options.interrupt.unwrap_or_default();
    let mut interrupted = false;
    let mut window_open = config.warmup.is_zero();
    let mut cpu_start = monitor::process_cpu();
    let mut steal_start = CpuTimes::now();
    let mut wall_start = SystemTime::now();

    let mut pending: BTreeMap<u32, PendingSecond> = BTreeMap::new();
    let mut timeline: Vec<Second> = Vec::new();
    let mut finished: Vec<Option<Box<Finished>>> = (0..threads).map(|_| None).collect();
    let mut done = 0;
    // Workers that have sent their last event (each sends its seconds in order, then Done).
    let mut stopped = vec![false; threads];
    let mut failure: Option<String> = None;

    while done < threads {
        tokio::select! {
            () = sleep_until(timing.warmup_end), if !window_open => {
                window_open = true;
                cpu_start = monitor::process_cpu();
                steal_start = CpuTimes::now();
                wall_start = SystemTime::now();
            }
            () = interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                stop.cancel();
            }
            event = events.recv() => match event {
                Some(Event::Interval { worker, index, duration, interval }) => {
                    let second = pending.entry(index).or_insert_with(|| PendingSecond {
                        reported: vec![false; threads],
                        duration: Duration::ZERO,
                        round_trips: 0,
                        errors: 0,
                        round_trip: latency::histogram(),
                        corrected: open_loop.then(latency::histogram),
                    });
                    second.reported[worker] = true;
                    second.duration = second.duration.max(duration);
                    second.round_trips += interval.round_trips;
                    second.errors += interval.errors;
                    add(&mut second.round_trip, &interval.round_trip);
                    if let (Some(ours), Some(theirs)) = (&mut second.corrected, &interval.corrected) {
                        add(ours, theirs);
                    }
                    flush_seconds(&mut pending, &mut timeline, &stopped, hdr_log.as_mut(), &progress);
                }
                Some(Event::Done { worker, result }) => {
                    finished[worker] = Some(result);
                    stopped[worker] = true;
                    done += 1;
                    flush_seconds(&mut pending, &mut timeline, &stopped, hdr_log.as_mut(), &progress);
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
    let cpu_end = monitor::process_cpu();
    let steal_end = CpuTimes::now();
    let wall_end = SystemTime::now();
    // Every worker has stopped: whatever is pending is complete.
    let all = vec![true; threads];
    flush_seconds(
        &mut pending,
        &mut timeline,
        &all,
        hdr_log.as_mut(),
        &progress,
    );
    progress.finish();
    for handle in handles {
        let _ = handle.join();
    }
    if let Some(reason) = failure {
        return Err(RunError::Setup(reason));
    }
    if let Some(log) = hdr_log.as_mut() {
        log.finish()
            .map_err(|err| RunError::Setup(format!("cannot write the --hdr-log: {err}")))?;
    }

    let finished: Vec<Box<Finished>> = finished.into_iter().flatten().collect();
    let mut totals: Option<Totals> = None;
    for f in &finished {
        match &mut totals {
            None => totals = Some(f.totals.clone()),
            Some(t) => t.merge(&f.totals),
        }
    }
    let Some(totals) = totals else {
        return Err(RunError::Setup("no worker reported".to_owned()));
    };
    let stopped = finished
        .iter()
        .map(|f| f.stopped_at)
        .max()
        .unwrap_or(timing.deadline);
    let measured = stopped.saturating_duration_since(timing.warmup_end);
    let in_flight: u64 = finished.iter().map(|f| f.in_flight).sum();
    let max_thread_cpu = finished
        .iter()
        .map(|f| f.thread_cpu)
        .max()
        .unwrap_or_default();

    Ok(build_report(
        &config,
        &target,
        Measured {
            totals,
            measured,
            in_flight,
            threads,
            cpu: cpu_end.saturating_sub(cpu_start),
            max_thread_cpu,
            steal: match (steal_start, steal_end) {
                (Some(a), Some(b)) => Some(a.steal_percent(&b)),
                _ => None,
            },
            wall_start,
            wall_end,
            interrupted,
            timeline,
        },
    ))
}

/// Turns every second that all workers have reported (or will never report, having stopped)
/// into a timeline entry, in order.
fn flush_seconds(
    pending: &mut BTreeMap<u32, PendingSecond>,
    timeline: &mut Vec<Second>,
    stopped: &[bool],
    mut hdr_log: Option<&mut HdrLog>,
    progress: &Progress,
) {
    while let Some(entry) = pending.first_entry() {
        let complete = entry
            .get()
            .reported
            .iter()
            .zip(stopped)
            .all(|(&reported, &stopped)| reported || stopped);
        if !complete {
            break;
        }
        let index = *entry.key();
        let second = entry.remove();
        let p = Percentiles::of(&second.round_trip);
        if let Some(log) = hdr_log.as_deref_mut()
            && let Err(err) = log.interval(
                index,
                second.duration,
                &second.round_trip,
                second.corrected.as_ref(),
            )
        {
            tracing::warn!(%err, "could not write to the hdr log");
        }
        progress.second(index, second.round_trips, second.errors, second.duration);
        timeline.push(Second {
            second: index,
            duration_s: second.duration.as_secs_f64(),
            round_trips: second.round_trips,
            errors: second.errors,
            p50_ns: p.p50,
            p99_ns: p.p99,
            corrected_p99_ns: second.corrected.as_ref().map(|h| Percentiles::of(h).p99),
        });
    }
}

/// What the coordinator measured, ready to be reported.
struct Measured {
    totals: Totals,
    measured: Duration,
    in_flight: u64,
    threads: usize,
    cpu: Duration,
    max_thread_cpu: Duration,
    steal: Option<f64>,
    wall_start: SystemTime,
    wall_end: SystemTime,
    interrupted: bool,
    timeline: Vec<Second>,
}

fn build_report(config: &Config, target: &Target, m: Measured) -> Report {
    let t = &m.totals;
    let seconds = m.measured.as_secs_f64();
    let per_second = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let allowed_cpus = monitor::allowed_cpus();
    let capacity = (m.threads.min(allowed_cpus.len().max(1))) as f64;
    let utilization = if seconds > 0.0 {
        m.cpu.as_secs_f64() / (seconds * capacity)
    } else {
        0.0
    };
    let max_thread_utilization = if seconds > 0.0 {
        m.max_thread_cpu.as_secs_f64() / seconds
    } else {
        0.0
    };
    let errors = t.errors.total();
    let encode = |h: &Histogram<u64>| latency::encode(h).unwrap_or_default();
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::this(),
        config: Config {
            threads: m.threads,
            ..config.clone()
        },
        target: TargetInfo {
            url: target.url.clone(),
            protocol: target.protocol,
            addr: target.addr.to_string(),
        },
        started_at: humantime::format_rfc3339_millis(m.wall_start).to_string(),
        finished_at: humantime::format_rfc3339_millis(m.wall_end).to_string(),
        measured_s: seconds,
        interrupted: m.interrupted,
        summary: Summary {
            round_trips: t.round_trips,
            round_trips_per_s: per_second(t.round_trips),
            bytes_sent: t.bytes_sent,
            bytes_received: t.bytes_received,
            bytes_sent_per_s: per_second(t.bytes_sent),
            bytes_received_per_s: per_second(t.bytes_received),
            connections_opened: t.connections_opened,
            connections_closed: t.connections_closed,
            in_flight_at_deadline: m.in_flight,
            errors,
            late_sends: config.rate.map(|_| t.late_sends),
        },
        latency: Latency {
            round_trip: Percentiles::of(&t.round_trip),
            connect: Percentiles::of(&t.connect),
            corrected: t.corrected.as_ref().map(Percentiles::of),
        },
        errors: t.errors.clone(),
        client: ClientLoad {
            threads: m.threads,
            allowed_cpus,
            capacity_cpus: capacity,
            cpu_s: m.cpu.as_secs_f64(),
            utilization,
            max_thread_utilization,
            cpu_us_per_round_trip: (t.round_trips > 0)
                .then(|| m.cpu.as_secs_f64() * 1e6 / t.round_trips as f64),
            steal_percent: m.steal,
        },
        flags: Flags {
            client_saturated: utilization > thresholds::CLIENT_SATURATED
                || max_thread_utilization > thresholds::CLIENT_SATURATED,
            high_steal: m.steal.is_some_and(|s| s > thresholds::HIGH_STEAL_PERCENT),
            all_failed: t.round_trips == 0 && errors > 0,
        },
        timeline: m.timeline,
        histograms: Histograms {
            round_trip: encode(&t.round_trip),
            connect: encode(&t.connect),
            corrected: t.corrected.as_ref().map(encode),
        },
    }
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
    fn plans_split_clients_and_quota() {
        let cases: [(u32, u64, u64, usize, &[u64]); 5] = [
            (4, 10, 400, 2, &[200, 200]),
            (4, 10, 400, 3, &[200, 100, 100]),
            (3, 10, 100, 2, &[60, 40]),
            (3, 10, 95, 2, &[60, 35]),
            (5, 0, 11, 2, &[6, 5]),
        ];
        for (connections, roundtrips, total, threads, quotas) in cases {
            let plans = plans(&config(connections, roundtrips, Some(total)), threads);
            let got: Vec<u64> = plans.iter().map(|p| p.quota.unwrap()).collect();
            assert_eq!(
                got, quotas,
                "c={connections} r={roundtrips} n={total} t={threads}"
            );
            assert_eq!(got.iter().sum::<u64>(), total);
            let clients: usize = plans.iter().map(|p| p.clients.len()).sum();
            assert_eq!(clients, connections as usize);
        }
        let free = plans(&config(5, 0, None), 2);
        assert_eq!(free[0].clients, [0, 2, 4]);
        assert_eq!(free[1].clients, [1, 3]);
        assert!(free.iter().all(|p| p.quota.is_none()));
    }
}
