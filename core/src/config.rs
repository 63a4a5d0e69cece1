//! What a run does: the load model (connections, round trips per connection, open-loop rate),
//! its length, the messages, and the timeouts. The same struct is embedded in every report, so
//! a result always says exactly how it was produced.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use crate::tls::{TlsConfig, TlsVersion};

/// WebSocket message type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WsMode {
    /// Binary messages.
    #[default]
    Binary,
    /// Text messages (payloads are ASCII, so always valid UTF-8).
    Text,
}

/// What HTTP request bodies contain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// Opaque bytes, `Content-Type: application/octet-stream` (for `/echo`).
    #[default]
    Raw,
    /// A compact JSON object, `Content-Type: application/json` (for JSON endpoints such as
    /// `/json` that parse and re-serialize: the echo must still be byte-identical).
    Json,
}

impl WsMode {
    /// Every mode, by the name flags and configs use.
    pub const ALL: [(&'static str, WsMode); 2] =
        [("binary", WsMode::Binary), ("text", WsMode::Text)];
}

impl Payload {
    /// Every payload, by the name flags and configs use.
    pub const ALL: [(&'static str, Payload); 2] = [("raw", Payload::Raw), ("json", Payload::Json)];
}

/// A name that is not one of a choice's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not one of: {expected}")]
pub struct UnknownChoice {
    /// What was given.
    pub given: String,
    /// The names allowed, comma-separated.
    pub expected: String,
}

pub(crate) fn choose<T: Copy>(
    table: &[(&'static str, T)],
    given: &str,
) -> Result<T, UnknownChoice> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(given))
        .map(|&(_, value)| value)
        .ok_or_else(|| UnknownChoice {
            given: given.to_owned(),
            expected: table
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl std::str::FromStr for WsMode {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<WsMode, UnknownChoice> {
        choose(&WsMode::ALL, s)
    }
}

impl std::str::FromStr for Payload {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Payload, UnknownChoice> {
        choose(&Payload::ALL, s)
    }
}

/// A run's settings. Durations serialize as seconds (fields ending in `_s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Target URL: `http://`, `ws://` or `tcp://`.
    pub url: String,
    /// Virtual clients, each with one connection at a time.
    pub connections: u32,
    /// Round trips per connection before it closes and is replaced; 0 keeps each connection
    /// for the whole run.
    pub roundtrips: u64,
    /// Length of the measured window (after warmup). With `total`, a time limit.
    #[serde(rename = "duration_s", with = "secs")]
    pub duration: Duration,
    /// Load before the measured window; its samples are discarded. A non-zero warmup counts
    /// from the moment every connection has opened once (the ramp, then this much at the full
    /// load), so the window starts steady.
    #[serde(rename = "warmup_s", with = "secs")]
    pub warmup: Duration,
    /// The longest the load may take to open every connection (from its start); past it the
    /// run fails, saying how many opened and why the others did not.
    #[serde(
        rename = "warmup_timeout_s",
        with = "secs",
        default = "default_warmup_timeout"
    )]
    pub warmup_timeout: Duration,
    /// Open loop: sends due within this are busy-waited for (the event loop keeps handling
    /// echoes meanwhile) instead of sleeping on the timer (`--pacer-spin`).
    #[serde(rename = "pacer_spin_s", with = "secs", default = "default_pacer_spin")]
    pub pacer_spin: Duration,
    /// Stop after this many round trips (completed or failed) instead of at the deadline.
    pub total: Option<u64>,
    /// Open loop: round trips per second in total, spread evenly over the connections.
    pub rate: Option<f64>,
    /// Message size in bytes.
    pub size: usize,
    /// WebSocket message type.
    pub ws_mode: WsMode,
    /// HTTP body contents.
    #[serde(default)]
    pub payload: Payload,
    /// Longest wait for one echo.
    #[serde(rename = "timeout_s", with = "secs")]
    pub timeout: Duration,
    /// Longest wait for a connection (TCP connect plus WebSocket handshake).
    #[serde(rename = "connect_timeout_s", with = "secs")]
    pub connect_timeout: Duration,
    /// Worker threads, each running its share of the connections on its own event loop.
    pub threads: usize,
    /// Whether targets outside loopback are allowed.
    pub allow_remote: bool,
    /// New connections per second in total, for the initial ramp and every replacement
    /// (`--connect-rate`); `None` opens them as fast as they can be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<f64>,
    /// `--pipeline`: messages in flight per connection, sent back to back and echoed in order
    /// (closed loop); 1 is strict ping-pong.
    #[serde(default = "one")]
    pub pipeline: usize,
    /// `--stages`: the measured window as stages that ramp or step the load — the rate with
    /// `rate` (which is where it starts), else the number of connections (starting at
    /// `connections`). `duration` is then their total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<crate::stages::Stages>,
    /// Objectives the run is judged against (`--slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<crate::slo::Slo>,
    /// Stop the run once an objective has been breached for this long, second by second
    /// (`--slo-abort`).
    #[serde(
        default,
        rename = "slo_abort_s",
        with = "optional_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub slo_abort: Option<Duration>,
    /// TLS settings, present when the URL is `https://`, `wss://` or `tls://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// `--workload broadcast`: subscribe every connection to a relay and publish from some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<crate::broadcast::BroadcastConfig>,
    /// `--shard I/N`: this run is one worker's share of a larger test, whose whole load is
    /// kept here (the fields above are the share: see [`Config::shard`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// `--start-at`: the wall-clock instant the measured window opens (the load starts
    /// `warmup` before it), so that the windows of a test's workers coincide.
    #[serde(
        default,
        rename = "start_at_unix_s",
        with = "unix_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_at: Option<SystemTime>,
    /// `--source`: local addresses the connections are made from, in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::source::SourceRange>,
}

fn one() -> usize {
    1
}

/// The most messages `--pipeline` may keep in flight on one connection.
pub const MAX_PIPELINE: usize = 1024;

/// The open-loop pacer's busy-wait unless told otherwise: a parked event loop wakes 10-20 µs
/// after its timer on a quiet VM of this type, so sends closer than this are spun for.
pub const DEFAULT_PACER_SPIN: Duration = Duration::from_micros(30);

/// The longest `--pacer-spin`: past it the client would spin for whole periods of any rate
/// worth pacing, and a typo (`1s`) would burn its core for nothing.
pub const MAX_PACER_SPIN: Duration = Duration::from_millis(10);

fn default_pacer_spin() -> Duration {
    DEFAULT_PACER_SPIN
}

/// How long a warmup waits for every connection to open unless told otherwise.
fn default_warmup_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Config {
    /// The defaults for `url`: 64 connections kept for 10 s, 32-byte messages, 1 s warmup,
    /// 10 s timeouts, one thread per CPU this process may use.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            connections: 64,
            roundtrips: 0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            warmup_timeout: default_warmup_timeout(),
            pacer_spin: DEFAULT_PACER_SPIN,
            total: None,
            rate: None,
            size: 32,
            ws_mode: WsMode::Binary,
            payload: Payload::Raw,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            threads: crate::monitor::allowed_cpus().len().max(1),
            allow_remote: false,
            connect_rate: None,
            stages: None,
            pipeline: 1,
            slo: None,
            slo_abort: None,
            tls: None,
            broadcast: None,
            shard: None,
            start_at: None,
            source: None,
        }
    }

    /// The stages resolved from where the run starts (`rate`, else `connections`), if any.
    pub fn resolved_stages(&self) -> Option<Vec<crate::stages::Stage>> {
        let start = self.rate.unwrap_or(f64::from(self.connections));
        self.stages.as_ref().map(|s| s.resolve(start))
    }

    /// The most connections open at once: `connections`, or the highest connection stage.
    pub fn peak_connections(&self) -> u32 {
        match (&self.rate, self.resolved_stages()) {
            (None, Some(stages)) => stages
                .iter()
                .map(|s| s.from.max(s.to))
                .fold(f64::from(self.connections), f64::max)
                .min(f64::from(u32::MAX)) as u32,
            _ => self.connections,
        }
    }

    /// Checks the settings against each other; the message names the flag to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(broadcast) = &self.broadcast {
            broadcast.validate(self)?;
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return Err(ConfigError::Invalid(format!(
                "--pipeline must be between 1 and {MAX_PIPELINE} messages in flight, not {}",
                self.pipeline
            )));
        }
        if self.pipeline.saturating_mul(self.size) > MAX_SIZE {
            return Err(ConfigError::Invalid(format!(
                "--pipeline {} x --size {} is more than the {MAX_SIZE} bytes one connection may have in flight",
                self.pipeline, self.size
            )));
        }
        if self.pipeline > 1 && self.rate.is_some() {
            return Err(ConfigError::Invalid(
                "--pipeline is closed loop: with --rate every send already has its own instant (for more in flight, raise -c)".into(),
            ));
        }
        if let Some(stages) = &self.stages {
            if self.total.is_some() {
                return Err(ConfigError::Invalid(
                    "--stages and -n/--total cannot be combined: the stages set the window's length".into(),
                ));
            }
            if stages.duration() != self.duration {
                return Err(ConfigError::Invalid(format!(
                    "--stages `{stages}` last {}, but -d/--duration says {}: with --stages the window is their total (leave -d out)",
                    humantime::format_duration(stages.duration()),
                    humantime::format_duration(self.duration)
                )));
            }
            if self.rate.is_none() {
                let resolved = self.resolved_stages().unwrap_or_default();
                if let Some(bad) = resolved
                    .iter()
                    .find(|s| s.to.fract() != 0.0 || s.from.fract() != 0.0)
                {
                    return Err(ConfigError::Invalid(format!(
                        "--stages `{stages}` without --rate sets the number of connections, which must be whole (a stage reaches {})",
                        if bad.to.fract() != 0.0 {
                            bad.to
                        } else {
                            bad.from
                        }
                    )));
                }
            }
        }
        if self.connections == 0 {
            return Err(ConfigError::Invalid(
                "-c/--connections must be at least 1".into(),
            ));
        }
        if self.duration.is_zero() {
            return Err(ConfigError::Invalid(
                "-d/--duration must be greater than zero".into(),
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "--timeout and --connect-timeout must be greater than zero".into(),
            ));
        }
        if self.threads == 0 {
            return Err(ConfigError::Invalid(
                "-t/--threads must be at least 1".into(),
            ));
        }
        if self.total == Some(0) {
            return Err(ConfigError::Invalid("-n/--total must be at least 1".into()));
        }
        if self.total.is_some() && !self.warmup.is_zero() {
            return Err(ConfigError::Invalid(
                "-n/--total counts every round trip from the start; it cannot be combined with --warmup".into(),
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ConfigError::Invalid(format!(
                "--rate must be a positive number of round trips per second, not {rate}"
            )));
        }
        if self.size > MAX_SIZE {
            return Err(ConfigError::Invalid(format!(
                "--size {} is larger than the {MAX_SIZE}-byte maximum",
                self.size
            )));
        }
        if self.payload == Payload::Json {
            if !self.url.starts_with("http:") {
                return Err(ConfigError::Invalid(
                    "--payload json is for http:// targets (JSON endpoints such as /json)".into(),
                ));
            }
            if self.size < MIN_JSON_SIZE {
                return Err(ConfigError::Invalid(format!(
                    "--payload json needs --size {MIN_JSON_SIZE} or more (the smallest JSON message)"
                )));
            }
        }
        if self.pacer_spin > MAX_PACER_SPIN {
            return Err(ConfigError::Invalid(format!(
                "--pacer-spin {} is longer than the most it may be, {}: it is how close a send must be to be busy-waited for, typically 30us-500us",
                humantime::format_duration(self.pacer_spin),
                humantime::format_duration(MAX_PACER_SPIN)
            )));
        }
        if let Some(rate) = self.connect_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ConfigError::Invalid(format!(
                "--connect-rate must be a positive number of connections per second, not {rate}"
            )));
        }
        if let Some(rate) = self.connect_rate
            && !self.warmup.is_zero()
        {
            let ramp = f64::from(self.connections) / rate;
            if ramp > self.warmup_timeout.as_secs_f64() {
                return Err(ConfigError::Invalid(format!(
                    "-c {} at --connect-rate {rate} takes {ramp:.1}s to open, longer than --warmup-timeout {}; raise --warmup-timeout or --connect-rate",
                    self.connections,
                    humantime::format_duration(self.warmup_timeout)
                )));
            }
        }
        if let Some(slo) = &self.slo {
            if self.rate.is_none()
                && let Some(limit) = slo.limits.iter().find(|l| {
                    matches!(
                        l.metric,
                        crate::slo::Metric::Rate | crate::slo::Metric::Late
                    )
                })
            {
                return Err(ConfigError::Invalid(format!(
                    "--slo `{}` compares what was achieved with the schedule offered, which needs --rate (open loop)",
                    limit.text
                )));
            }
        } else if self.slo_abort.is_some() {
            return Err(ConfigError::Invalid(
                "--slo-abort needs --slo: the objectives whose breach stops the run".into(),
            ));
        }
        if self.slo_abort.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Invalid(
                "--slo-abort must be greater than zero".into(),
            ));
        }
        if self.size == 0 && self.url.starts_with("tcp:") {
            return Err(ConfigError::Invalid(
                "--size 0 cannot be used with tcp:// (an empty write has no echo); use 1 or more"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The smallest JSON payload: `{"id":"<16 hex digits>","pad":""}`.
pub const MIN_JSON_SIZE: usize = 34;

/// Largest message: 64 MiB.
pub const MAX_SIZE: usize = 64 * 1024 * 1024;

/// Settings that cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value or combination is invalid; the text says which.
    #[error("{0}")]
    Invalid(String),
}

/// Serde for durations as (fractional) seconds.
pub mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `value` as seconds.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    /// Reads seconds (a finite, non-negative number).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

/// Serde for optional durations as (fractional) seconds.
mod optional_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_some(&d.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(deserializer)?
            .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Serde for an optional wall-clock instant as (fractional) seconds since the Unix epoch.
mod unix_time {
    use std::time::{Duration, SystemTime};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value.map(|t| t.duration_since(SystemTime::UNIX_EPOCH)) {
            Some(Ok(since)) => serializer.serialize_some(&since.as_secs_f64()),
            Some(Err(_)) | None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<f64>::deserialize(deserializer)?
            .map(|s| {
                Duration::try_from_secs_f64(s)
                    .map(|since| SystemTime::UNIX_EPOCH + since)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to a valid config.
    type Change = Box<dyn Fn(&mut Config)>;

    /// Each invalid combination is refused with a message naming the flag.
    #[test]
    fn validation() {
        let ok = Config::new("http://127.0.0.1:1/echo");
        assert_eq!(ok.validate(), Ok(()));
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.connections = 0), "--connections"),
            (Box::new(|c| c.duration = Duration::ZERO), "--duration"),
            (Box::new(|c| c.timeout = Duration::ZERO), "--timeout"),
            (Box::new(|c| c.threads = 0), "--threads"),
            (
                Box::new(|c| c.total = Some(0)),
                "--total must be at least 1",
            ),
            (
                Box::new(|c| c.total = Some(5)),
                "cannot be combined with --warmup",
            ),
            (Box::new(|c| c.rate = Some(0.0)), "--rate"),
            (Box::new(|c| c.rate = Some(f64::NAN)), "--rate"),
            (Box::new(|c| c.connect_rate = Some(0.0)), "--connect-rate"),
            (
                Box::new(|c| c.pacer_spin = Duration::from_millis(11)),
                "--pacer-spin 11ms is longer than the most it may be, 10ms",
            ),
            (
                Box::new(|c| c.connect_rate = Some(f64::INFINITY)),
                "--connect-rate",
            ),
            (
                Box::new(|c| {
                    c.connections = 15_000;
                    c.connect_rate = Some(100.0);
                }),
                "-c 15000 at --connect-rate 100 takes 150.0s to open, longer than --warmup-timeout 30s",
            ),
            (
                Box::new(|c| c.pipeline = 0),
                "--pipeline must be between 1 and 1024",
            ),
            (
                Box::new(|c| {
                    c.pipeline = 8;
                    c.rate = Some(100.0);
                }),
                "--pipeline is closed loop",
            ),
            (
                Box::new(|c| {
                    c.pipeline = 1024;
                    c.size = 1 << 20;
                }),
                "--pipeline 1024 x --size 1048576 is more than",
            ),
            (Box::new(|c| c.size = MAX_SIZE + 1), "--size"),
            (
                Box::new(|c| {
                    c.payload = Payload::Json;
                    c.size = 33;
                }),
                "--size 34 or more",
            ),
            (
                Box::new(|c| {
                    c.url = "ws://127.0.0.1:1/ws".into();
                    c.payload = Payload::Json;
                }),
                "for http:// targets",
            ),
            (
                Box::new(|c| {
                    c.url = "tcp://127.0.0.1:9".into();
                    c.size = 0;
                }),
                "tcp://",
            ),
            (
                Box::new(|c| c.slo = crate::slo::Slo::parse("rate>=99%").ok()),
                "needs --rate",
            ),
            (
                Box::new(|c| c.slo = crate::slo::Slo::parse("p99<1ms,late<=1%").ok()),
                "--slo `late<=1%` compares",
            ),
            (
                Box::new(|c| c.slo_abort = Some(Duration::from_secs(1))),
                "--slo-abort needs --slo",
            ),
            (
                Box::new(|c| {
                    c.slo = crate::slo::Slo::parse("p99<1ms").ok();
                    c.slo_abort = Some(Duration::ZERO);
                }),
                "--slo-abort must be greater than zero",
            ),
        ];
        for (change, needle) in cases {
            let mut config = ok.clone();
            change(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    /// Choices parse by name, case-insensitively; an unknown one lists the valid names.
    #[test]
    fn choices() {
        assert_eq!("text".parse::<WsMode>(), Ok(WsMode::Text));
        assert_eq!("JSON".parse::<Payload>(), Ok(Payload::Json));
        assert_eq!(
            "xml".parse::<Payload>().unwrap_err().to_string(),
            "`xml` is not one of: raw, json"
        );
    }

    /// The config survives a JSON round trip with durations in seconds.
    #[test]
    fn json_round_trip() {
        let mut config = Config::new("ws://127.0.0.1:1/ws");
        config.duration = Duration::from_millis(2500);
        config.rate = Some(1000.0);
        let json = serde_json::to_value(&config).unwrap();
        assert!(json.get("slo").is_none(), "no SLO, no field: {json}");
        config.slo = crate::slo::Slo::parse("p99<2ms,rate>=99%").ok();
        config.slo_abort = Some(Duration::from_millis(1500));
        let with_slo = serde_json::to_value(&config).unwrap();
        assert_eq!(with_slo["slo_abort_s"], 1.5);
        assert_eq!(with_slo["slo"][0]["text"], "p99<2ms");
        assert_eq!(serde_json::from_value::<Config>(with_slo).unwrap(), config);
        config.slo = None;
        config.slo_abort = None;
        assert_eq!(json["duration_s"], 2.5);
        assert_eq!(json["ws_mode"], "binary");
        let back: Config = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
    }
}
