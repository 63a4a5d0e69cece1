//! The run report: the one serializable type the client writes (`--json`) and the harness
//! reads. It is versioned; readers refuse versions they do not know rather than misread them.
//! Latencies are nanoseconds. A report is derived from a [`Measurement`] by one function
//! ([`Report::derive`]) and carries the measurement's histograms — totals and every second's —
//! so [`Report::measurement`] gives the measurement back and reports can be merged exactly.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ErrorLog;
use crate::latency::{self, CodecError, Percentiles};
use crate::measurement::{Counts, CpuUse, Latencies, Measurement, Second};
use crate::protocol::Protocol;
use crate::slo::{SloCheck, Window};
use crate::thresholds;

/// The schema version this build writes and reads. Version 2 added each second's histograms
/// to the timeline, so timelines merge.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The program that wrote it.
    pub tool: Tool,
    /// The settings of the run.
    pub config: Config,
    /// What was loaded.
    pub target: TargetInfo,
    /// Wall-clock start of the measured window (after warmup), RFC 3339.
    pub started_at: String,
    /// Wall-clock end of the measured window, RFC 3339.
    pub finished_at: String,
    /// Length of the measured window in seconds.
    pub measured_s: f64,
    /// The run was stopped early by SIGINT/SIGTERM; the figures cover what ran.
    pub interrupted: bool,
    /// Counts and rates.
    pub summary: Summary,
    /// Latency percentiles.
    pub latency: Latency,
    /// Errors by kind.
    pub errors: ErrorLog,
    /// The load generator's own CPU use and the machine's steal.
    pub client: ClientLoad,
    /// Warnings about the trustworthiness of this run.
    pub flags: Flags,
    /// The objectives of `--slo`, each with the value measured over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloOutcome>,
    /// With `--stages`: one entry per stage reached, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageOutcome>,
    /// `--workload broadcast`: deliveries, their exact counts and latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<crate::broadcast::BroadcastSummary>,
    /// With `--start-at`: how late the window opened after the instant asked for (negative:
    /// early), seconds, by this machine's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_offset_s: Option<f64>,
    /// A report merged from the shards of a test (`echo-client merge`, `--processes`): how
    /// many workers, and each one's own figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<crate::shard::Workers>,
    /// One entry per second of the measured window: counts, p50/p99, and the second's
    /// histograms (see [`Second`]).
    pub timeline: Vec<Second>,
    /// The full histograms, for exact merging and re-analysis.
    pub histograms: Histograms,
}

/// Name and version of the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `echo-client`.
    pub name: String,
    /// Its crate version.
    pub version: String,
}

impl Tool {
    /// This build.
    pub fn this() -> Tool {
        Tool {
            name: "echo-client".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The resolved target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The URL as given.
    pub url: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The address connections went to.
    pub addr: String,
}

/// Counts over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Round trips completed: echo received and byte-identical.
    pub round_trips: u64,
    /// `round_trips` per second of the measured window.
    pub round_trips_per_s: f64,
    /// Bytes written, protocol framing included (HTTP heads, WebSocket frame headers).
    pub bytes_sent: u64,
    /// Bytes read, protocol framing included.
    pub bytes_received: u64,
    /// `bytes_sent` per second.
    pub bytes_sent_per_s: f64,
    /// `bytes_received` per second.
    pub bytes_received_per_s: f64,
    /// Connections established.
    pub connections_opened: u64,
    /// Connections that ended (closed normally or after an error).
    pub connections_closed: u64,
    /// Round trips sent but not yet echoed at the deadline: neither completed nor errors.
    pub in_flight_at_deadline: u64,
    /// All errors, every kind.
    pub errors: u64,
    /// Open loop only: sends that went out after their intended time because the connection
    /// was still waiting for an echo or a reconnect.
    pub late_sends: Option<u64>,
    /// Open loop only: sends that went out more than 100 µs after their intended time
    /// although the connection was free — late because of the client, not the server.
    #[serde(default)]
    pub pacer_late_sends: Option<u64>,
    /// Over TLS: handshakes completed, and how many of them resumed a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsHandshakes>,
}

/// Over TLS: what the handshakes were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsHandshakes {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, resumed ones (`--tls-resume`).
    pub resumed: u64,
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Round-trip time from the actual send to the echo (uncorrected).
    pub round_trip: Percentiles,
    /// Connection establishment (TCP connect, plus the TLS handshake and the WebSocket
    /// upgrade where there are any).
    pub connect: Percentiles,
    /// Connect's phases, when it has more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_phases: Option<PhasePercentiles>,
    /// Open loop only: round-trip time from the intended send (corrected for coordinated omission).
    pub corrected: Option<Percentiles>,
    /// Open loop only: how long after it could go each message was sent (the pacer's precision).
    #[serde(default)]
    pub send_lag: Option<Percentiles>,
}

/// Percentiles of each phase of a connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePercentiles {
    /// TCP connect.
    pub tcp: Percentiles,
    /// TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Percentiles>,
    /// WebSocket upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Percentiles>,
}

/// Encoded histograms of each phase of a connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseHistograms {
    /// TCP connect.
    pub tcp: String,
    /// TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// WebSocket upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<String>,
}

impl PhaseHistograms {
    fn decode(&self) -> Result<crate::measurement::Phases, CodecError> {
        let optional = |h: &Option<String>| h.as_deref().map(latency::decode).transpose();
        Ok(crate::measurement::Phases {
            tcp: latency::decode(&self.tcp)?,
            tls: optional(&self.tls)?,
            upgrade: optional(&self.upgrade)?,
        })
    }
}

/// The client's own resource use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientLoad {
    /// Worker threads used.
    pub threads: usize,
    /// CPUs the process was allowed to run on.
    pub allowed_cpus: Vec<usize>,
    /// CPUs the client could use at most: min(threads, allowed CPUs).
    pub capacity_cpus: f64,
    /// Process CPU time (user + system) during the measured window.
    pub cpu_s: f64,
    /// The CPU the load needed — `cpu_s` less `pacer_spin_s` — divided by (measured seconds x
    /// capacity): 1.0 means the client had no CPU left.
    pub utilization: f64,
    /// Open loop: CPU seconds the pacer spent busy-waiting for a send due within microseconds
    /// while nothing else needed the thread. Part of `cpu_s`; the client would have had it to
    /// spare, so it is not in `utilization` or `cpu_us_per_round_trip`.
    #[serde(default)]
    pub pacer_spin_s: f64,
    /// The busiest worker thread's CPU time over the measured window, as a fraction of it.
    pub max_thread_utilization: f64,
    /// Client CPU microseconds per completed round trip (idle spin excluded).
    pub cpu_us_per_round_trip: Option<f64>,
    /// The machine's CPU steal over the measured window, in percent (`None` off Linux).
    pub steal_percent: Option<f64>,
}

/// Conditions under which the numbers should not be taken as a server result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// The client used more than 90% of its CPU capacity (or one worker thread did): the
    /// client, not the server, may have set the pace.
    pub client_saturated: bool,
    /// The hypervisor stole more than 5% of the CPU time: the machine was noisy.
    pub high_steal: bool,
    /// Not a single round trip completed although some were attempted.
    pub all_failed: bool,
}

/// How the run fared against its objectives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloOutcome {
    /// Every limit over the whole measured window, in the order given.
    pub checks: Vec<SloCheck>,
    /// Every limit held.
    pub met: bool,
    /// The run was stopped early by `--slo-abort`: a limit was breached second after second.
    pub aborted: bool,
}

/// One stage of a `--stages` run: its load, what it achieved, and its own histograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutcome {
    /// Position in the run, from 0.
    pub stage: u32,
    /// Level at its start: round trips per second (open loop) or connections.
    pub from: f64,
    /// Level at its end.
    pub to: f64,
    /// Open loop: the rate its schedule offered, on average (round trips per second).
    pub offered_per_s: Option<f64>,
    /// Round trips completed per second of the stage.
    pub round_trips_per_s: f64,
    /// Round-trip latency (uncorrected).
    pub round_trip: Percentiles,
    /// Open loop: corrected latency.
    pub corrected: Option<Percentiles>,
    /// `--slo` judged over this stage alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Vec<SloCheck>>,
    /// The stage's raw record (its index, length, counts and histograms), for merging.
    pub record: Second,
}

/// Histograms as base64 HdrHistogram V2 compressed encodings (see [`crate::latency`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Round-trip latency (uncorrected).
    pub round_trip: String,
    /// Connect latency.
    pub connect: String,
    /// Open loop only: corrected round-trip latency.
    pub corrected: Option<String>,
    /// Open loop only: send lag.
    #[serde(default)]
    pub send_lag: Option<String>,
    /// Connect's phases, when it has more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_phases: Option<PhaseHistograms>,
}

impl Histograms {
    /// Decodes the round-trip histogram.
    pub fn round_trip(&self) -> Result<Histogram<u64>, CodecError> {
        latency::decode(&self.round_trip)
    }

    /// Decodes the connect histogram.
    pub fn connect(&self) -> Result<Histogram<u64>, CodecError> {
        latency::decode(&self.connect)
    }

    /// Decodes the corrected histogram, if there is one.
    pub fn corrected(&self) -> Option<Result<Histogram<u64>, CodecError>> {
        self.corrected.as_deref().map(latency::decode)
    }

    /// Decodes the send-lag histogram, if there is one.
    pub fn send_lag(&self) -> Option<Result<Histogram<u64>, CodecError>> {
        self.send_lag.as_deref().map(latency::decode)
    }
}

/// A report that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON, or not a report.
    #[error("not an echo-client report: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a version with another schema.
    #[error("{}", version_advice(*found))]
    Version {
        /// The version in the file.
        found: u64,
    },
    /// A histogram in the report cannot be decoded.
    #[error("the report's {what} histogram is damaged: {source}")]
    Histogram {
        /// Which histogram.
        what: &'static str,
        /// Why it cannot be decoded.
        source: CodecError,
    },
}

/// Each stage's outcome, from the measurement's stage records and the configured stages.
fn stage_outcomes(config: &Config, m: &Measurement) -> Vec<StageOutcome> {
    let Some(stages) = config.resolved_stages() else {
        return Vec::new();
    };
    let open_loop = config.rate.is_some();
    m.stages
        .iter()
        .filter_map(|record| {
            let stage = stages.get(record.index as usize)?;
            let seconds = record.duration.as_secs_f64();
            let offered = open_loop.then(|| {
                if record.duration >= stage.duration {
                    stage.mean()
                } else {
                    // A stage cut short: what its schedule offered up to the cut.
                    let into = seconds / stage.duration.as_secs_f64();
                    stage.from + (stage.to - stage.from) * into / 2.0
                }
            });
            Some(StageOutcome {
                stage: record.index,
                from: stage.from,
                to: stage.to,
                offered_per_s: offered,
                round_trips_per_s: if seconds > 0.0 {
                    record.round_trips as f64 / seconds
                } else {
                    0.0
                },
                round_trip: Percentiles::of(&record.round_trip),
                corrected: record.corrected.as_ref().map(Percentiles::of),
                slo: config
                    .slo
                    .as_ref()
                    .map(|slo| slo.judge(Window::from(record), offered)),
                record: record.clone(),
            })
        })
        .collect()
}

fn version_advice(found: u64) -> String {
    match found {
        0 => "the file has no schema_version: it is not an echo-client report".to_owned(),
        1 => format!(
            "report schema version 1 (echo-client before per-second histograms) cannot be read by this build, which reads version {SCHEMA_VERSION}; re-run the load with this echo-client. Published result folders stay comparable: `echo-harness compare` reads their CSV files, not their reports"
        ),
        newer if newer > u64::from(SCHEMA_VERSION) => format!(
            "report schema version {newer} is newer than this build understands (version {SCHEMA_VERSION}); update echobench"
        ),
        other => format!(
            "report schema version {other} is not supported (this build reads version {SCHEMA_VERSION}); re-run with a matching echo-client"
        ),
    }
}

/// What a report says besides its measurement: who wrote it, how it was configured, and
/// where the load went.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The writer.
    pub tool: Tool,
    /// The settings (with the thread count actually used).
    pub config: Config,
    /// The resolved target.
    pub target: TargetInfo,
}

impl Report {
    /// Parses a report, checking its schema version before anything else.
    pub fn from_json(text: &str) -> Result<Report, ReportError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let found = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if found != u64::from(SCHEMA_VERSION) {
            return Err(ReportError::Version { found });
        }
        Ok(serde_json::from_value(value)?)
    }

    /// The report of `measurement`: every count, rate, percentile and flag is derived here
    /// and nowhere else.
    pub fn derive(context: Context, m: &Measurement) -> Report {
        let c = &m.counts;
        let seconds = m.measured.as_secs_f64();
        let per_second = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let working = m.cpu.process.saturating_sub(m.cpu.idle_spin).as_secs_f64();
        let utilization = if seconds > 0.0 && m.cpu.capacity_cpus > 0.0 {
            working / (seconds * m.cpu.capacity_cpus)
        } else {
            0.0
        };
        let max_thread_utilization = if seconds > 0.0 {
            m.cpu.busiest_thread.as_secs_f64() / seconds
        } else {
            0.0
        };
        let errors = m.error_count();
        let encode = |h: &Histogram<u64>| latency::encode(h).unwrap_or_default();
        let open_loop = context.config.rate.is_some();
        let rfc3339 = |t: SystemTime| humantime::format_rfc3339_nanos(t).to_string();
        let slo = context.config.slo.as_ref().map(|slo| {
            let checks = slo.judge(Window::from(m), context.config.rate);
            SloOutcome {
                met: checks.iter().all(|c| c.met),
                checks,
                aborted: m.slo_aborted,
            }
        });
        Report {
            schema_version: SCHEMA_VERSION,
            tool: context.tool,
            target: context.target,
            started_at: rfc3339(m.started_at),
            finished_at: rfc3339(m.started_at + m.measured),
            measured_s: seconds,
            interrupted: m.interrupted,
            summary: Summary {
                round_trips: c.round_trips,
                round_trips_per_s: per_second(c.round_trips),
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                bytes_sent_per_s: per_second(c.bytes_sent),
                bytes_received_per_s: per_second(c.bytes_received),
                connections_opened: c.connections_opened,
                connections_closed: c.connections_closed,
                in_flight_at_deadline: c.in_flight_at_deadline,
                errors,
                late_sends: open_loop.then_some(c.late_sends),
                pacer_late_sends: open_loop.then_some(c.pacer_late_sends),
                tls: context.config.tls.is_some().then_some(TlsHandshakes {
                    handshakes: c.tls_handshakes,
                    resumed: c.tls_resumed,
                }),
            },
            latency: Latency {
                round_trip: Percentiles::of(&m.latencies.round_trip),
                connect: Percentiles::of(&m.latencies.connect),
                connect_phases: m.latencies.phases.as_ref().map(|p| PhasePercentiles {
                    tcp: Percentiles::of(&p.tcp),
                    tls: p.tls.as_ref().map(Percentiles::of),
                    upgrade: p.upgrade.as_ref().map(Percentiles::of),
                }),
                corrected: m.latencies.corrected.as_ref().map(Percentiles::of),
                send_lag: m.latencies.send_lag.as_ref().map(Percentiles::of),
            },
            errors: m.errors.clone(),
            client: ClientLoad {
                threads: m.cpu.threads,
                allowed_cpus: m.cpu.allowed_cpus.clone(),
                capacity_cpus: m.cpu.capacity_cpus,
                cpu_s: m.cpu.process.as_secs_f64(),
                utilization,
                pacer_spin_s: m.cpu.idle_spin.as_secs_f64(),
                max_thread_utilization,
                cpu_us_per_round_trip: (c.round_trips > 0)
                    .then(|| working * 1e6 / c.round_trips as f64),
                steal_percent: m.steal_percent,
            },
            flags: Flags {
                client_saturated: utilization > thresholds::CLIENT_SATURATED
                    || max_thread_utilization > thresholds::CLIENT_SATURATED,
                high_steal: m
                    .steal_percent
                    .is_some_and(|s| s > thresholds::HIGH_STEAL_PERCENT),
                all_failed: c.round_trips == 0 && errors > 0,
            },
            slo,
            stages: stage_outcomes(&context.config, m),
            broadcast: None,
            start_offset_s: context
                .config
                .start_at
                .map(|at| crate::shard::offset_s(m.started_at, at)),
            workers: None,
            timeline: m.timeline.clone(),
            histograms: Histograms {
                round_trip: encode(&m.latencies.round_trip),
                connect: encode(&m.latencies.connect),
                corrected: m.latencies.corrected.as_ref().map(encode),
                send_lag: m.latencies.send_lag.as_ref().map(encode),
                connect_phases: m.latencies.phases.as_ref().map(|p| PhaseHistograms {
                    tcp: encode(&p.tcp),
                    tls: p.tls.as_ref().map(encode),
                    upgrade: p.upgrade.as_ref().map(encode),
                }),
            },
            config: context.config,
        }
    }

    /// The measurement this report was derived from: counts, errors and histograms exactly
    /// (CPU time and the window to the nanosecond their decimal forms keep).
    pub fn measurement(&self) -> Result<Measurement, ReportError> {
        let damaged = |what| move |source| ReportError::Histogram { what, source };
        let s = &self.summary;
        let started_at =
            humantime::parse_rfc3339(&self.started_at).unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Measurement {
            started_at,
            measured: Duration::try_from_secs_f64(self.measured_s).unwrap_or_default(),
            interrupted: self.interrupted,
            slo_aborted: self.slo.as_ref().is_some_and(|s| s.aborted),
            counts: Counts {
                round_trips: s.round_trips,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                connections_opened: s.connections_opened,
                connections_closed: s.connections_closed,
                late_sends: s.late_sends.unwrap_or(0),
                pacer_late_sends: s.pacer_late_sends.unwrap_or(0),
                in_flight_at_deadline: s.in_flight_at_deadline,
                tls_handshakes: s.tls.map_or(0, |t| t.handshakes),
                tls_resumed: s.tls.map_or(0, |t| t.resumed),
            },
            errors: self.errors.clone(),
            latencies: Latencies {
                round_trip: self
                    .histograms
                    .round_trip()
                    .map_err(damaged("round-trip"))?,
                connect: self.histograms.connect().map_err(damaged("connect"))?,
                phases: self
                    .histograms
                    .connect_phases
                    .as_ref()
                    .map(PhaseHistograms::decode)
                    .transpose()
                    .map_err(damaged("connect-phase"))?,
                corrected: self
                    .histograms
                    .corrected()
                    .transpose()
                    .map_err(damaged("corrected"))?,
                send_lag: self
                    .histograms
                    .send_lag()
                    .transpose()
                    .map_err(damaged("send-lag"))?,
            },
            timeline: self.timeline.clone(),
            stages: self.stages.iter().map(|s| s.record.clone()).collect(),
            cpu: CpuUse {
                threads: self.client.threads,
                allowed_cpus: self.client.allowed_cpus.clone(),
                capacity_cpus: self.client.capacity_cpus,
                process: Duration::try_from_secs_f64(self.client.cpu_s).unwrap_or_default(),
                busiest_thread: Duration::try_from_secs_f64(
                    self.client.max_thread_utilization * self.measured_s,
                )
                .unwrap_or_default(),
                idle_spin: Duration::try_from_secs_f64(self.client.pacer_spin_s)
                    .unwrap_or_default(),
            },
            steal_percent: self.client.steal_percent,
        })
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}
