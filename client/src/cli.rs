//! The `echo-client` command line: flags to [`Config`], the run, the outputs, the exit code.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use echobench_core::config::{Config, Payload, TlsConfig, TlsVersion, WsMode};
use echobench_core::shard::ShardSpec;
use echobench_core::slo::Slo;
use echobench_core::stages::Stages;
use tokio_util::sync::CancellationToken;

use crate::run::{RunError, RunOptions};

pub use echobench_core::exit::client as exit;

const AFTER_HELP: &str = "\
Exit codes:
  0    the run completed (errors during the load are data in the report)
  1    the run could not be carried out, or an output file could not be written
  2    invalid flags or target URL (a non-loopback target needs --allow-remote)
  3    the target could not be reached when the run started, or not every connection
       opened within --warmup-timeout
  4    every round trip failed
  5    the run breached an --slo objective (or --slo-abort stopped it)
  130  interrupted by SIGINT/SIGTERM (the summary and files cover what ran)

Examples:
  echo-client http://127.0.0.1:8080/echo -c 64 -d 10s --json run.json
  echo-client ws://127.0.0.1:8080/ws -c 256 -r 10 --ws-mode text
  echo-client tcp://127.0.0.1:9000 -c 1 --rate 1000 -d 30s --hdr-log rtt.hlog
  echo-client https://localhost:8443/echo --cacert ca.pem -c 64 -r 10 --tls-resume
  T=$(( $(date +%s) + 5 ))   # two workers of one test, one window, one merged report:
  echo-client ws://127.0.0.1:8080/ws -c 2000 --rate 20000 --shard 1/2 --start-at $T --json a.json &
  echo-client ws://127.0.0.1:8080/ws -c 2000 --rate 20000 --shard 2/2 --start-at $T --json b.json
  echo-client merge a.json b.json --json test.json      (echo-client merge --help)";

/// Round-trip load generator for HTTP, WebSocket and TCP echo servers.
///
/// N virtual clients stay live for the whole run: each connects, does R round trips (send a
/// unique message, wait for the echo, check it is byte-identical), closes, and is replaced at
/// once. Latency goes into HDR histograms (ns, 3 significant digits); the summary, and the
/// --json/--csv/--hdr-log files, say how much the client itself was loaded, so a client-bound
/// run is never mistaken for a server result.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-client", version, max_term_width = 100, after_help = AFTER_HELP)]
pub struct Args {
    /// Target: http://HOST:PORT[/PATH] (POSTs a --size body; the path defaults to /echo),
    /// ws://HOST:PORT[/PATH] or tcp://HOST:PORT; over TLS https://, wss:// or tls:// (with
    /// --cacert or --insecure).
    pub url: String,

    /// Virtual clients: connections open at all times.
    #[arg(short, long, default_value_t = 64)]
    pub connections: u32,

    /// Round trips per connection before it is closed (WebSocket close handshake; HTTP
    /// `Connection: close` on the last request) and replaced at once. 0 keeps each connection
    /// for the whole run.
    #[arg(short, long, default_value_t = 0)]
    pub roundtrips: u64,

    /// Length of the measured window (e.g. 10s, 500ms, 2m). At the deadline every connection
    /// is dropped: round trips still in flight are neither completed nor errors, and are
    /// reported as in_flight_at_deadline. With --total it is a time limit.
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Load before the measured window; its samples are discarded. It counts from the moment
    /// every connection has opened once (see --warmup-timeout): the ramp, then this long at
    /// the full load, so the window measures the steady load, not the ramp or the server's
    /// recovery from it. 0 measures from the start, ramp included. [default: 1s, or 0 with
    /// --total]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,

    /// The longest the load may take to open every connection (from the start). If some have
    /// not opened by then, the run fails (exit 3) saying how many did and what the others ran
    /// into.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub warmup_timeout: Duration,

    /// Stop after exactly N round trips (completed or failed) instead of at the deadline;
    /// with -r R > 0, exactly ceil(N/R) connections are opened. For deterministic runs.
    #[arg(short = 'n', long, value_name = "N")]
    pub total: Option<u64>,

    /// Open loop: R round trips per second in total, spread evenly over the connections, each
    /// sent at its scheduled time even if the server is slow. Latency is then reported twice:
    /// "corrected", from the time the message should have been sent (a send held back by an
    /// unanswered echo counts that wait, as in wrk2: coordinated omission corrected), and
    /// "uncorrected", from the time it was actually sent.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Open loop: busy-wait for sends due within this (the event loop keeps handling echoes
    /// meanwhile) instead of sleeping on the pacer's timer. Sleeping is exact only when the CPU
    /// wakes at once; on a VM an idle vCPU can wake 100 µs or more late, so on a dedicated core
    /// raise it to cover the gap between sends (the harness uses 250us). The time spent
    /// spinning with nothing to do is reported apart ("idle spin"), not as load. At most 10ms.
    #[arg(long, value_name = "DURATION", default_value = "30us", value_parser = humantime::parse_duration)]
    pub pacer_spin: Duration,

    /// The measured window as load stages, comma-separated (as k6's stages): D:N ramps linearly
    /// to N over D, D:=N steps to N and holds it for D, D:+K*M is M stages of D each K above
    /// the one before, D:xF*M M stages each F times the one before. With --rate the level is
    /// the rate, starting at --rate; otherwise the number of connections, starting at -c
    /// (connections open and close mid-run to follow it). The window lasts the stages' total
    /// (no -d); the report and the summary have a row per stage (offered vs achieved, latency,
    /// --slo judged per stage). E.g. --rate 1000 --stages 5s:1000,20s:50000,20s:=50000.
    #[arg(long, value_name = "STAGES", value_parser = parse_stages, conflicts_with_all = ["duration", "total"])]
    pub stages: Option<Stages>,

    /// Keep K messages in flight on each connection (closed loop): K messages stamped with
    /// their own ids go out back to back (one write for TCP and HTTP/1.1 pipelining), then
    /// the K echoes are read in order, each verified against its own message and timed from
    /// the batch's send; then the next batch. As h2load -m or wrk's pipeline script; 1 is
    /// strict ping-pong.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub pipeline: usize,

    /// What the connections do: echo (send, wait for the echo, verify) or broadcast (every
    /// connection subscribes to the relay at the URL, e.g. ws://HOST:PORT/broadcast or a tcp://
    /// relay; --publishers of them publish at --rate in total, or each with --pipeline of its
    /// own messages in flight; every receiver times every delivery).
    #[arg(long, value_name = "KIND", default_value = "echo", value_parser = ["echo", "broadcast"])]
    pub workload: String,

    /// --workload broadcast: how many of the connections publish.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub publishers: u32,

    /// Open at most N new connections per second, in total: the initial ramp and every
    /// replacement (-r) are paced, so a server's accept backlog is not flooded (whose dropped
    /// SYNs would be measured as seconds of connect latency). [default: as fast as possible]
    #[arg(long, value_name = "N")]
    pub connect_rate: Option<f64>,

    /// Message size in bytes; each message is unique (its first 16 bytes carry its id).
    #[arg(short, long, value_name = "BYTES", default_value_t = 32)]
    pub size: usize,

    /// WebSocket message type: binary or text.
    #[arg(long, default_value = "binary", value_parser = choice(WsMode::ALL))]
    pub ws_mode: WsMode,

    /// HTTP bodies: raw (bytes) or json (a compact JSON object for JSON endpoints such as /json
    /// (re-serialized by the server, the echo must still be byte-identical)).
    #[arg(long, default_value = "raw", value_parser = choice(Payload::ALL))]
    pub payload: Payload,

    /// Longest wait for one echo: then it counts as round_trip_timeout and the connection is
    /// replaced. Timeouts are checked every tenth of the shorter of --timeout and
    /// --connect-timeout (1 to 100 ms), so a wait ends up to that long after its timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Longest wait for a connection (TCP connect plus WebSocket handshake). [default: --timeout]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Worker threads, each an event loop running its share of the connections. [default:
    /// the CPUs in this process's affinity mask]
    #[arg(short, long)]
    pub threads: Option<NonZeroUsize>,

    /// Objectives to judge the run by, comma-separated: latency percentiles (p50, p99, p999 =
    /// 99.9, p99.99, max; corrected latency in open loop) against a duration, `errors` (failed
    /// round trips over attempted), `rate` (achieved over offered; needs --rate) and `late`
    /// (sends held back by an unanswered echo over round trips; needs --rate) against a
    /// percentage. E.g. 'p99<2ms,p999<10ms,errors<0.1%,rate>=99%,late<=1%'. Judged over the measured
    /// window; each limit and its measured value go into the summary and the report, and a
    /// breach makes the exit code 5.
    #[arg(long, value_name = "LIMITS", value_parser = parse_slo)]
    pub slo: Option<Slo>,

    /// Stop the run once an --slo objective has been breached for this long, judged second by
    /// second (e.g. 3s); the report covers what ran and says it was stopped.
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration, requires = "slo")]
    pub slo_abort: Option<Duration>,

    /// Write the full report to FILE: versioned JSON with the config, summary, flags, per-second
    /// timeline and the HDR histograms (base64 V2), which merge exactly. `-` writes it to
    /// stdout (the summary then goes to stderr): how a worker on another host hands it back.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write one CSV row with a header line to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write an HdrHistogram interval log (one interval per second, nanoseconds) to FILE.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,

    /// TLS: trust the certificates in this PEM file (e.g. what echo-server --cert-out wrote).
    /// Nothing else is trusted: no system or webpki roots.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "TLS (https://, wss://, tls://)"
    )]
    pub cacert: Option<PathBuf>,

    /// TLS: accept any certificate (the handshake's signatures are still checked).
    #[arg(long, help_heading = "TLS (https://, wss://, tls://)")]
    pub insecure: bool,

    /// TLS: speak only this version, 1.2 or 1.3. [default: either, 1.3 preferred]
    #[arg(long, value_name = "VERSION", value_parser = choice(TlsVersion::ALL), help_heading = "TLS (https://, wss://, tls://)")]
    pub tls_version: Option<TlsVersion>,

    /// TLS: resume sessions on replacement connections (TLS 1.3 tickets, TLS 1.2 session IDs
    /// or tickets) instead of a full handshake each time; the report counts how many resumed.
    #[arg(long, help_heading = "TLS (https://, wss://, tls://)")]
    pub tls_resume: bool,

    /// Allow a target outside loopback (127.0.0.0/8, ::1). Only for servers you are allowed to
    /// load-test.
    #[arg(long)]
    pub allow_remote: bool,

    /// Run shard I of N of the test these flags describe (1-based, e.g. 2/4): this worker's
    /// share of -c, --rate, -n and --connect-rate, so that N workers (processes, hosts, the
    /// pods of a Kubernetes Indexed Job) started with 1/N to N/N run exactly the test once
    /// between them. Their --json reports merge into the test's with `echo-client merge`.
    #[arg(long, value_name = "I/N", help_heading = "Many workers")]
    pub shard: Option<ShardSpec>,

    /// Open the measured window at this wall-clock instant (Unix seconds, e.g. 1798000000.5,
    /// or RFC 3339), so that every worker of a test measures the same window: the load starts
    /// --warmup before it; a worker that is not ready by then opens its window late and its
    /// report says by how much (start_offset_s).
    #[arg(long, value_name = "TIME", value_parser = parse_start_at, help_heading = "Many workers")]
    pub start_at: Option<SystemTime>,

    /// Run the test over P worker processes on this machine, each pinned to its part of this
    /// process's CPUs with its shard of the load (as --shard), their windows opening at one
    /// instant; their reports are merged exactly into this run's one report (`workers` says
    /// how many, with each one's own summary). A worker that fails fails the run with its
    /// stderr. Chosen automatically, saying so, when -c needs more open files than one
    /// process may have.
    #[arg(long, value_name = "P", help_heading = "Many workers")]
    pub processes: Option<u32>,

    /// Make connections from these local addresses in turn (an address, or an IPv4 range such
    /// as 127.0.0.2-127.0.0.9): each address pair has about 28,000 ephemeral ports, so one
    /// destination takes that many connections per source address.
    #[arg(long, value_name = "ADDR[-ADDR]", help_heading = "Many workers")]
    pub source: Option<echobench_core::source::SourceRange>,

    /// A worker process of --processes: run this shard's config (JSON) instead of the flags.
    #[arg(long, value_name = "FILE", hide = true)]
    pub worker_config: Option<PathBuf>,

    /// A worker process of --processes: pin this process to these CPUs (comma-separated).
    #[arg(long, value_name = "CPUS", hide = true, value_delimiter = ',')]
    pub pin: Vec<usize>,

    /// Print nothing on stdout (use with --json or --csv).
    #[arg(short, long)]
    pub quiet: bool,

    /// Never show live progress on stderr (it is only shown on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// `--start-at`: Unix seconds or an RFC 3339 instant.
fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map(|since| SystemTime::UNIX_EPOCH + since)
            .map_err(|_| {
                format!("`{text}` is not a time: give Unix seconds (e.g. `date +%s`) or RFC 3339")
            });
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("`{text}` is not a time: give Unix seconds (e.g. `date +%s`) or RFC 3339 (2026-12-03T10:00:00Z)"))
}

/// `--stages`: the parser's message points at the bad part.
fn parse_stages(text: &str) -> Result<Stages, String> {
    text.parse::<Stages>().map_err(|err| err.to_string())
}

/// `--slo`: the parser's message points at the bad part.
fn parse_slo(text: &str) -> Result<Slo, String> {
    Slo::parse(text).map_err(|err| err.to_string())
}

/// A flag whose values are a core type's named choices (`--ws-mode`, `--payload`): clap lists
/// the names in `--help` and refuses others.
fn choice<T: Copy + Send + Sync + 'static>(
    table: [(&'static str, T); 2],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(table.map(|(name, _)| name)).map(move |name| {
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(table[0].1, |&(_, value)| value)
    })
}

impl Args {
    /// The TLS settings, when a TLS flag was given (a plaintext URL then refuses them; a TLS
    /// URL without them is refused for trusting nothing: see `Target::for_config`).
    fn tls(&self) -> Option<TlsConfig> {
        let flagged =
            self.cacert.is_some() || self.insecure || self.tls_version.is_some() || self.tls_resume;
        flagged.then(|| TlsConfig {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            version: self.tls_version,
            resume: self.tls_resume,
        })
    }

    /// The run settings these flags describe (not yet validated: see [`Config::validate`]).
    pub fn config(&self) -> Config {
        let defaults = Config::new(self.url.clone());
        Config {
            connections: self.connections,
            roundtrips: self.roundtrips,
            duration: self.stages.as_ref().map_or(self.duration, Stages::duration),
            warmup: self.warmup.unwrap_or(if self.total.is_some() {
                Duration::ZERO
            } else {
                defaults.warmup
            }),
            warmup_timeout: self.warmup_timeout,
            pacer_spin: self.pacer_spin,
            total: self.total,
            rate: self.rate,
            size: self.size,
            ws_mode: self.ws_mode,
            payload: self.payload,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout.unwrap_or(self.timeout),
            threads: self.threads.map_or(defaults.threads, NonZeroUsize::get),
            allow_remote: self.allow_remote,
            connect_rate: self.connect_rate,
            stages: self.stages.clone(),
            pipeline: self.pipeline,
            slo: self.slo.clone(),
            slo_abort: self.slo_abort,
            tls: self.tls(),
            broadcast: (self.workload == "broadcast").then_some(
                echobench_core::broadcast::BroadcastConfig {
                    publishers: self.publishers,
                },
            ),
            start_at: self.start_at,
            source: self.source,
            ..defaults
        }
    }

    /// The config this process runs: [`Args::config`], with `--shard` its share of it, or a
    /// `--processes` worker's config as its parent wrote it.
    pub fn run_config(&self) -> Result<Config, String> {
        if let Some(path) = &self.worker_config {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read --worker-config {}: {err}", path.display()))?;
            return serde_json::from_str(&text).map_err(|err| {
                format!("--worker-config {} is not a config: {err}", path.display())
            });
        }
        let config = self.config();
        match self.shard {
            Some(spec) => config.shard(spec).map_err(|err| err.to_string()),
            None => Ok(config),
        }
    }

    /// How many worker processes to run: `--processes`, or as many as -c needs when one
    /// process may not open that many files (saying so); `None` runs the load here.
    fn processes(&self, config: &Config) -> Option<u32> {
        if self.worker_config.is_some() || self.shard.is_some() {
            return None;
        }
        if let Some(p) = self.processes {
            return (p != 1).then_some(p);
        }
        if config.broadcast.is_some() {
            return None;
        }
        let per_process = crate::run::connections_per_process()?;
        let peak = u64::from(config.peak_connections());
        if peak <= per_process {
            return None;
        }
        let processes = u32::try_from(peak.div_ceil(per_process.max(1))).unwrap_or(u32::MAX);
        eprintln!(
            "echo-client: -c {peak} needs more open files than one process may have ({per_process} connections each): running {processes} worker processes (--processes {processes})"
        );
        Some(processes)
    }
}

/// Runs the command and returns its exit code.
pub fn run(args: &Args) -> u8 {
    if args.worker_config.is_some()
        && let Err(err) = echobench_core::copies::end_with_parent()
    {
        eprintln!("Error: {err}");
        return exit::FAILURE;
    }
    if !args.pin.is_empty()
        && let Err(err) = crate::processes::pin(&args.pin)
    {
        eprintln!(
            "Error: cannot pin this process to CPUs {:?}: {err}",
            args.pin
        );
        return exit::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: cannot start a tokio runtime: {err}");
            return exit::FAILURE;
        }
    };
    let interrupt = CancellationToken::new();
    let options = RunOptions {
        progress: !args.no_progress && !args.quiet,
        hdr_log: args.hdr_log.clone(),
        interrupt: Some(interrupt.clone()),
    };
    let config = match args.run_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("Error: {err}");
            return exit::USAGE;
        }
    };
    if args.worker_config.is_none()
        && let Some(ports) = echobench_core::source::ephemeral_ports()
    {
        let sources = config.source.map_or(1, |s| s.addresses().len());
        if let Some(warning) =
            echobench_core::source::crowding(u64::from(config.peak_connections()), sources, ports)
        {
            eprintln!("echo-client: {warning}");
        }
    }
    let outcome = match args.processes(&config) {
        Some(processes) => {
            if args.shard.is_some() {
                eprintln!(
                    "Error: --processes and --shard cannot be combined: run each host's shard with --shard, or split this one test with --processes"
                );
                return exit::USAGE;
            }
            runtime
                .block_on(async {
                    watch_signals(interrupt.clone());
                    crate::processes::run(&config, processes, args.threads.is_some(), interrupt)
                        .await
                })
                .map_err(|err| match err {
                    crate::processes::ProcessesError::Usage(m) => (m, exit::USAGE),
                    crate::processes::ProcessesError::Worker { message, code } => (message, code),
                })
                .and_then(|report| {
                    args.hdr_log
                        .as_deref()
                        .map_or(Ok(()), |path| {
                            crate::export::hdrlog::write_timeline(path, &report)
                        })
                        .map(|()| report)
                        .map_err(|m| (m, exit::FAILURE))
                })
        }
        None => runtime
            .block_on(async {
                watch_signals(interrupt);
                crate::run::run(config, options).await
            })
            .map_err(|err| {
                let code = match err {
                    RunError::Config(_) | RunError::Target(_) => exit::USAGE,
                    RunError::Unreachable { .. } | RunError::Ramp { .. } => exit::UNREACHABLE,
                    RunError::Setup(_) => exit::FAILURE,
                };
                (err.to_string(), code)
            }),
    };
    let report = match outcome {
        Ok(report) => report,
        Err((message, code)) => {
            eprintln!("Error: {message}");
            return code;
        }
    };
    let mut code = if report.interrupted {
        exit::INTERRUPTED
    } else if report.flags.all_failed {
        exit::ALL_FAILED
    } else if report.slo.as_ref().is_some_and(|s| !s.met || s.aborted) {
        exit::SLO_BREACHED
    } else {
        exit::OK
    };
    let outputs = crate::export::Outputs {
        json: args.json.as_deref(),
        csv: args.csv.as_deref(),
        quiet: args.quiet,
    };
    if let Err(message) = outputs.write(&report) {
        eprintln!("Error: {message}");
        code = exit::FAILURE;
    }
    code
}

/// Cancels `interrupt` on SIGINT or SIGTERM, so the run stops early but still reports.
fn watch_signals(interrupt: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will end the run without a report");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        interrupt.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("echo-client").chain(args.iter().copied()))
    }

    /// Defaults are sensible and flags map onto the config.
    #[test]
    fn flags_to_config() {
        let config = parse(&["http://127.0.0.1:1"]).unwrap().config();
        assert_eq!(
            (config.connections, config.roundtrips, config.size),
            (64, 0, 32)
        );
        assert_eq!(config.duration, Duration::from_secs(10));
        assert_eq!(config.warmup, Duration::from_secs(1));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));

        let config = parse(&[
            "ws://127.0.0.1:1/ws",
            "-c",
            "4",
            "-r",
            "10",
            "-n",
            "400",
            "--ws-mode",
            "text",
            "--timeout",
            "2s",
            "-t",
            "1",
            "--rate",
            "500",
        ])
        .unwrap()
        .config();
        assert_eq!(
            (config.connections, config.roundtrips, config.total),
            (4, 10, Some(400))
        );
        assert_eq!(config.warmup, Duration::ZERO, "--total implies no warmup");
        assert_eq!(config.ws_mode, WsMode::Text);
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!((config.threads, config.rate), (1, Some(500.0)));
        assert_eq!(config.pacer_spin, Duration::from_micros(30), "the default");
        assert_eq!(config.validate(), Ok(()));

        let spin = |value: &str| {
            parse(&["tcp://127.0.0.1:1", "--rate", "100", "--pacer-spin", value])
                .unwrap()
                .config()
        };
        assert_eq!(spin("250us").pacer_spin, Duration::from_micros(250));
        assert_eq!(spin("0s").validate(), Ok(()), "0: never spin, always park");
        assert!(
            spin("1s")
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--pacer-spin 1s is longer than the most it may be, 10ms")
        );
    }

    /// `--stages` sets the window to their total.
    #[test]
    fn stages_set_the_window() {
        let config = parse(&["tcp://127.0.0.1:1", "--stages", "5s:100,10s:=50,2s:+5*3"])
            .unwrap()
            .config();
        assert_eq!(config.duration, Duration::from_secs(21));
        assert_eq!(config.peak_connections(), 100);
        assert_eq!(config.validate(), Ok(()));
    }

    /// Malformed flags are refused by the parser with exit code 2.
    #[test]
    fn bad_flags() {
        for args in [
            &["http://x", "-c", "-1"][..],
            &["http://x", "-d", "forever"],
            &["http://x", "-t", "0"],
            &["http://x", "--ws-mode", "morse"],
            &["http://x", "--slo", "p99<soon"],
            &["http://x", "--slo-abort", "2s"],
            &["http://x", "--pacer-spin", "soon"],
            &["http://x", "--stages", "5s"],
            &["http://x", "--stages", "5s:10", "-d", "5s"],
            &["http://x", "--stages", "5s:10", "-n", "100"],
            &[],
        ] {
            assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
