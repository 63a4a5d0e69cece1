//! The run report: the one serializable type the client writes (`--json`) and the harness
//! reads. It is versioned; readers refuse versions they do not know rather than misread them.
//! Latencies are nanoseconds; full histograms are included so runs can be merged exactly.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ErrorLog;
use crate::latency::{self, CodecError, Percentiles};
use crate::target::Protocol;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

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
    /// The client's own CPU use and the machine's steal.
    pub client: ClientLoad,
    /// Warnings about the trustworthiness of this run.
    pub flags: Flags,
    /// One entry per second of the measured window.
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
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Round-trip time from the actual send to the echo (uncorrected).
    pub round_trip: Percentiles,
    /// Connection establishment (TCP connect, plus the upgrade for WebSocket).
    pub connect: Percentiles,
    /// Open loop only: round-trip time from the intended send (corrected for coordinated omission).
    pub corrected: Option<Percentiles>,
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
    /// `cpu_s` divided by (measured seconds x capacity): 1.0 means the client had no CPU left.
    pub utilization: f64,
    /// The busiest worker thread's CPU time over the measured window, as a fraction of it.
    pub max_thread_utilization: f64,
    /// Client CPU microseconds per completed round trip.
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

/// Thresholds behind [`Flags`].
pub mod thresholds {
    /// `client_saturated` above this utilization.
    pub const CLIENT_SATURATED: f64 = 0.90;
    /// `high_steal` above this percentage.
    pub const HIGH_STEAL_PERCENT: f64 = 5.0;
}

/// One second of the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Index from the start of the measured window (0-based).
    pub second: u32,
    /// Length of this interval (shorter for a final partial second).
    pub duration_s: f64,
    /// Round trips completed in it.
    pub round_trips: u64,
    /// Errors in it.
    pub errors: u64,
    /// Median round-trip latency in it (ns; 0 if none completed).
    pub p50_ns: u64,
    /// 99th percentile round-trip latency in it (ns).
    pub p99_ns: u64,
    /// Open loop only: corrected 99th percentile in it (ns).
    pub corrected_p99_ns: Option<u64>,
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
}

/// A report that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON, or not a report.
    #[error("not an echo-client report: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a version with another schema.
    #[error(
        "report schema version {found} is not supported (this build reads version {SCHEMA_VERSION}); re-run with a matching echo-client"
    )]
    Version {
        /// The version in the file.
        found: u64,
    },
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

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}
