//! The harness configuration (TOML): how long and how often each cell runs, which servers are
//! compared, and the matrix of loads. Unknown keys are errors, and every error names the file,
//! line and field, because a typo silently ignored would publish the wrong experiment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use echobench_core::Protocol;
use serde::{Deserialize, Serialize};

use crate::capacity::settings::{Mode, SearchSection, SloSection};
use crate::workload::Workload;

/// The configuration built into the binary (`default.toml`).
pub const DEFAULT: &str = include_str!("default.toml");

/// A whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessConfig {
    /// Timing, trials and CPU placement.
    #[serde(default)]
    pub run: RunSection,
    /// The servers compared.
    #[serde(rename = "server", default)]
    pub servers: Vec<ServerSpec>,
    /// The loads, each block a product of its lists.
    #[serde(rename = "matrix", default)]
    pub matrices: Vec<MatrixSpec>,
    /// What a capacity search holds servers to.
    #[serde(default)]
    pub slo: SloSection,
    /// How capacity searches search.
    #[serde(default)]
    pub search: SearchSection,
    /// Where echo-client runs: here (default) or split over hosts.
    #[serde(default)]
    pub client: crate::hosts::ClientSection,
}

/// How the harness knows a server is ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Wait for a `listening <URL>` line on stdout (and take the URL from it).
    #[default]
    Line,
    /// Poll until the port accepts connections (the harness picks the port).
    Port,
}

/// `[[server]]`: one server to compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Name in results.
    pub name: String,
    /// Program and arguments, with `{bin}`, `{addr}`, `{host}`, `{port}`, `{threads}` and
    /// (for TLS servers) `{ca}`, `{cert}` and `{key}` placeholders.
    pub command: Vec<String>,
    /// What it speaks.
    pub protocol: Protocol,
    /// It serves TLS, and writes the certificate a client must trust to the file `{ca}` names
    /// before its ready line (`echo-server --tls --cert-out {ca}`), or serves the certificate
    /// and key the harness makes when its command names `{cert}` or `{key}` (the harness then
    /// writes `{ca}` itself); the client gets `--cacert` with that file.
    #[serde(default)]
    pub tls: bool,
    /// Path to load, replacing the one in the ready line (or, with `ready = "port"`, the
    /// default `/echo` or `/ws`); e.g. `/json` together with `payload = "json"`.
    pub path: Option<String>,
    /// HTTP bodies echo-client sends: `raw` (default) or `json` for endpoints that parse and
    /// re-serialize JSON.
    #[serde(default)]
    pub payload: echobench_core::Payload,
    /// How readiness is detected.
    #[serde(default)]
    pub ready: Readiness,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (relative to the config file's folder).
    pub cwd: Option<PathBuf>,
    /// What it serves: `echo` (default), `broadcast` (a relay), or both.
    #[serde(default = "crate::workload::default_workloads")]
    pub workloads: Vec<Workload>,
    /// A WebSocket relay's path for broadcast cells (default `/broadcast`).
    pub broadcast_path: Option<String>,
}

/// `[[matrix]]`: cells = servers x connections x size x roundtrips x rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// Concurrent connections.
    pub connections: Vec<u32>,
    /// Message sizes in bytes.
    #[serde(default = "default_sizes")]
    pub size: Vec<usize>,
    /// Round trips per connection (0 = kept for the whole run).
    #[serde(default = "default_roundtrips")]
    pub roundtrips: Vec<u64>,
    /// Open-loop rates in round trips per second; empty (or 0) = closed loop.
    #[serde(default)]
    pub rate: Vec<f64>,
    /// Open-loop rates as fractions of each server's capacity for the same load, measured
    /// earlier in the same run by a `capacity = true` block (0.5 = half of it).
    #[serde(default)]
    pub rate_of_capacity: Vec<f64>,
    /// Search this block's loads for their capacity under `[slo]` (see `[search]`) instead of
    /// running them at fixed rates.
    #[serde(default)]
    pub capacity: bool,
    /// TLS servers only: the client resumes sessions on replacement connections
    /// (`--tls-resume`); a block with it set covers the TLS servers alone.
    #[serde(default)]
    pub tls_resume: bool,
    /// Only these servers (by name); default: all.
    pub servers: Option<Vec<String>>,
    /// Only servers of these protocols; default: all.
    pub protocols: Option<Vec<Protocol>>,
    /// What the cells load: `echo` (default) or `broadcast` (then `connections` counts the
    /// subscribers and `rate` the messages published per second in total), on the servers
    /// whose `workloads` include it.
    #[serde(default)]
    pub workload: Workload,
    /// Broadcast: how many of the subscribers publish (each a cell).
    #[serde(default = "crate::workload::default_publishers")]
    pub publishers: Vec<u32>,
    /// This block's trials per cell, in place of `[run] trials` (e.g. more and shorter
    /// trials for the fixed-rate cost cells, whose trial-to-trial spread only more trials
    /// narrow). `--trials`, `--duration` and `--quick` set every block's to `[run]`'s.
    pub trials: Option<u32>,
    /// This block's measured window, in place of `[run] duration`.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// This block's warmup, in place of `[run] warmup`.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub warmup: Option<Duration>,
}

impl MatrixSpec {
    /// The block's own trials, window and warmup (each unset where `[run]`'s apply).
    pub fn timing(&self) -> crate::matrix::Timing {
        crate::matrix::Timing {
            trials: self.trials,
            duration: self.duration,
            warmup: self.warmup,
        }
    }
}

fn default_sizes() -> Vec<usize> {
    vec![32]
}

fn default_roundtrips() -> Vec<u64> {
    vec![0]
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema (the message has line and field).
    #[error("invalid config {origin}: {message}")]
    Parse {
        /// The file (or "built-in default").
        origin: String,
        /// toml's message, with line, column and the offending key.
        message: String,
    },
    /// Parsed, but the values do not make sense together.
    #[error("invalid config {origin}: {message}")]
    Invalid {
        /// The file (or "built-in default").
        origin: String,
        /// What is wrong and which field to change.
        message: String,
    },
}

impl HarnessConfig {
    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<HarnessConfig, ConfigFileError> {
        let config: HarnessConfig = toml::from_str(text).map_err(|err| ConfigFileError::Parse {
            origin: origin.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config
            .validate()
            .map_err(|message| ConfigFileError::Invalid {
                origin: origin.to_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<HarnessConfig, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        HarnessConfig::parse(&text, &path.display().to_string())
    }

    /// The built-in default.
    pub fn default_config() -> Result<HarnessConfig, ConfigFileError> {
        HarnessConfig::parse(DEFAULT, "built-in default")
    }

    /// The reference server `name` exactly as the built-in config runs it: the one spec the
    /// crosscheck and `exec` start too, so no caller builds its own.
    pub fn reference(name: &str) -> Result<ServerSpec, String> {
        let config = HarnessConfig::default_config().map_err(|err| err.to_string())?;
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        config
            .servers
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a reference server; expected one of: {}",
                    names.join(", ")
                )
            })
    }

    /// `--quick`: one trial of short runs, for smoke tests.
    pub fn quick(mut self) -> HarnessConfig {
        self.clear_block_timing();
        self.run.trials = 1;
        self.run.duration = Duration::from_millis(1000);
        self.run.warmup = Duration::from_millis(250);
        self.run.cooldown = Duration::from_millis(100);
        self.search.quick();
        self
    }

    /// Drops every block's own trials, window and warmup, so that `[run]`'s apply to all (for
    /// `--quick`, `--trials` and `--duration`, which speak for the whole run).
    pub fn clear_block_timing(&mut self) {
        for matrix in &mut self.matrices {
            (matrix.trials, matrix.duration, matrix.warmup) = (None, None, None);
        }
    }

    /// `echo-harness capacity`: every block's loads are searched for their capacity, and no
    /// block runs fixed trials.
    pub fn capacity_only(mut self) -> HarnessConfig {
        self.clear_block_timing();
        for matrix in &mut self.matrices {
            matrix.capacity = true;
            matrix.rate.clear();
            matrix.rate_of_capacity.clear();
        }
        self
    }

    fn validate(&self) -> Result<(), String> {
        let run = &self.run;
        if run.trials == 0 {
            return Err("[run] trials must be at least 1".into());
        }
        for (name, value) in [
            ("duration", run.duration),
            ("ready_timeout", run.ready_timeout),
            ("timeout", run.timeout),
        ] {
            if value.is_zero() {
                return Err(format!("[run] {name} must be greater than zero"));
            }
        }
        if self.servers.is_empty() {
            return Err("no [[server]] is configured".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for server in &self.servers {
            if server.name.is_empty()
                || !server
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(format!(
                    "[[server]] name `{}` must be non-empty and use only letters, digits, `-`, `_` and `.` (it becomes part of file names)",
                    server.name
                ));
            }
            if !names.insert(server.name.as_str()) {
                return Err(format!("[[server]] name `{}` is used twice", server.name));
            }
            if server.command.is_empty() || server.command[0].is_empty() {
                return Err(format!("[[server]] `{}` has an empty command", server.name));
            }
        }
        if self.matrices.is_empty() {
            return Err("no [[matrix]] is configured".into());
        }
        self.search.validate(&self.slo)?;
        self.client.validate()?;
        for (i, matrix) in self.matrices.iter().enumerate() {
            let block = format!("[[matrix]] #{}", i + 1);
            if matrix.connections.is_empty()
                || matrix.size.is_empty()
                || matrix.roundtrips.is_empty()
            {
                return Err(format!(
                    "{block}: connections, size and roundtrips must not be empty lists"
                ));
            }
            if matrix.connections.contains(&0) {
                return Err(format!("{block}: connections must be at least 1"));
            }
            if let Some(rate) = matrix.rate.iter().find(|r| !(r.is_finite() && **r >= 0.0)) {
                return Err(format!(
                    "{block}: rate {rate} is not a non-negative number of round trips per second"
                ));
            }
            if let Some(f) = matrix
                .rate_of_capacity
                .iter()
                .find(|f| !(f.is_finite() && **f > 0.0 && **f <= 1.0))
            {
                return Err(format!(
                    "{block}: rate_of_capacity {f} is not a fraction above 0 and at most 1 (0.5 = half the capacity)"
                ));
            }
            if matrix.capacity && !(matrix.rate.is_empty() && matrix.rate_of_capacity.is_empty()) {
                return Err(format!(
                    "{block}: capacity = true searches the rate itself; remove rate and rate_of_capacity (or put them in a block of their own)"
                ));
            }
            if !matrix.rate.is_empty() && !matrix.rate_of_capacity.is_empty() {
                return Err(format!(
                    "{block}: give rate or rate_of_capacity, not both (one block per kind of rate)"
                ));
            }
            if !matrix.rate_of_capacity.is_empty() && self.search.mode == Mode::Connections {
                return Err(format!(
                    "{block}: rate_of_capacity needs [search] mode = \"rate\" (a capacity in connections is not a rate)"
                ));
            }
            for server in self
                .servers
                .iter()
                .filter(|s| s.payload == echobench_core::Payload::Json)
            {
                let applies = matrix
                    .servers
                    .as_ref()
                    .is_none_or(|n| n.contains(&server.name))
                    && matrix
                        .protocols
                        .as_ref()
                        .is_none_or(|p| p.contains(&server.protocol));
                if let Some(size) = matrix
                    .size
                    .iter()
                    .find(|&&s| applies && s < echobench_core::config::MIN_JSON_SIZE)
                {
                    return Err(format!(
                        "{block}: size {size} is too small for server `{}` (payload = \"json\" needs {} bytes or more); restrict the block with `servers` or raise the size",
                        server.name,
                        echobench_core::config::MIN_JSON_SIZE
                    ));
                }
            }
            if matrix.capacity && matrix.timing() != crate::matrix::Timing::default() {
                return Err(format!(
                    "{block}: a capacity = true block takes its probes' window and warmup from [search] (and its repetitions from [search] confirm); remove trials, duration and warmup"
                ));
            }
            if matrix.trials == Some(0) {
                return Err(format!("{block}: trials must be at least 1"));
            }
            if matrix.duration.is_some_and(|d| d.is_zero()) {
                return Err(format!("{block}: duration must be greater than zero"));
            }
            if let Some(names_given) = &matrix.servers
                && let Some(unknown) = names_given.iter().find(|n| !names.contains(n.as_str()))
            {
                return Err(format!(
                    "{block}: servers lists `{unknown}`, which is not a [[server]] name"
                ));
            }
        }
        crate::workload::validate(self)
    }
}

/// Durations as humantime strings ("2s", "500ms").
pub(crate) mod duration;
mod run;

pub use run::RunSection;

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in default parses, validates and has the documented shape.
    #[test]
    fn default_is_valid() {
        let config = HarnessConfig::default_config().unwrap();
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hyper",
                "axum",
                "tungstenite",
                "axum-ws",
                "tcp",
                "tcp-relay"
            ]
        );
        assert_eq!(config.run.trials, 3);
        assert_eq!(
            (config.run.halt_poll, config.run.pacer_spin),
            (
                Some(Duration::from_micros(200)),
                Some(Duration::from_micros(250))
            )
        );
        assert_eq!(config.matrices.len(), 5);
        assert!(config.matrices[0].capacity);
        assert_eq!(config.slo.limits, crate::capacity::settings::DEFAULT_SLO);
        // The cost block runs more, shorter trials than [run]'s.
        assert_eq!(
            config.matrices[1].timing(),
            crate::matrix::Timing {
                trials: Some(8),
                duration: Some(Duration::from_secs(1)),
                warmup: None
            }
        );
        let quick = config.quick();
        assert_eq!(
            (quick.run.trials, quick.run.duration, quick.search.confirm),
            (1, Duration::from_secs(1), 0)
        );
        assert!(quick.matrices.iter().all(|m| m.timing().is_unset()));
        let only = HarnessConfig::default_config().unwrap().capacity_only();
        assert!(
            only.matrices
                .iter()
                .all(|m| m.capacity && m.rate.is_empty())
        );
    }

    /// Every config shipped in the repository parses and validates, with the servers it names.
    #[test]
    fn shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cases: [(&str, &[&str]); 6] = [
            ("harness/configs/cost-rates.toml", &["hyper", "tcp"]),
            (
                "harness/configs/tls.toml",
                &[
                    "hyper",
                    "hyper-tls",
                    "axum",
                    "axum-tls",
                    "tungstenite",
                    "tungstenite-tls",
                    "axum-ws",
                    "axum-ws-tls",
                    "tcp",
                    "tcp-tls",
                ],
            ),
            (
                "peers/peers-tls.toml",
                &[
                    "hyper-tls",
                    "node-https",
                    "python-aiohttp-tls",
                    "tungstenite-tls",
                    "node-wss",
                    "python-websockets-tls",
                ],
            ),
            (
                "harness/configs/broadcast.toml",
                &[
                    "tungstenite",
                    "tungstenite-4k",
                    "axum-ws",
                    "node-ws",
                    "python-websockets",
                    "tcp-relay",
                ],
            ),
            (
                "harness/configs/ws-read-buffer.toml",
                &["tungstenite", "tungstenite-4k", "axum-ws", "axum-ws-4k"],
            ),
            (
                "peers/peers.toml",
                &[
                    "hyper",
                    "axum",
                    "node-http",
                    "python-aiohttp",
                    "flask-gunicorn",
                    "tungstenite",
                    "axum-ws",
                    "node-ws",
                    "python-websockets",
                    "tcp",
                    "hyper-json",
                    "axum-json",
                    "node-http-json",
                    "python-aiohttp-json",
                    "flask-gunicorn-json",
                ],
            ),
        ];
        for (file, expected) in cases {
            let config =
                HarnessConfig::load(&root.join(file)).unwrap_or_else(|err| panic!("{err}"));
            let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, expected, "{file}");
        }
    }

    /// Malformed configs fail with the line and the offending field named.
    #[test]
    fn errors_name_line_and_field() {
        let server = "[[server]]\nname = \"a\"\ncommand = [\"x\"]\nprotocol = \"http\"\n";
        let matrix = "[[matrix]]\nconnections = [1]\n";
        let cases: Vec<(String, Vec<&str>)> = vec![
            (format!("[run]\ndurration = \"2s\"\n{server}{matrix}"), vec!["line 2", "unknown field `durration`"]),
            (format!("[run]\nduration = \"soon\"\n{server}{matrix}"), vec!["line 2", "`soon` is not a duration"]),
            (format!("{server}protocol2 = 1\n{matrix}"), vec!["line 5", "unknown field `protocol2`"]),
            (format!("[[server]]\nname = \"a\"\ncommand = [\"x\"]\nprotocol = \"gopher\"\n{matrix}"), vec!["line 4", "gopher"]),
            (format!("{server}[[matrix]]\nconnections = \"64\"\n"), vec!["line 6", "connections"]),
            (format!("{server}{server}{matrix}"), vec!["name `a` is used twice"]),
            (server.to_string(), vec!["no [[matrix]]"]),
            (format!("{server}[[matrix]]\nconnections = [0]\n"), vec!["[[matrix]] #1", "at least 1"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nservers = [\"b\"]\n"), vec!["`b`, which is not a [[server]] name"]),
            (format!("[run]\ntrials = 0\n{server}{matrix}"), vec!["trials must be at least 1"]),
            ("[[server]]\nname = \"a b\"\ncommand = [\"x\"]\nprotocol = \"tcp\"\n[[matrix]]\nconnections = [1]\n".into(), vec!["name `a b`"]),
            (format!("{server}[[matrix]]\nconnections = [1]\ncapacity = true\nrate = [5]\n"), vec!["[[matrix]] #1", "capacity = true searches the rate itself"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nrate = [5]\nrate_of_capacity = [0.5]\n"), vec!["rate or rate_of_capacity, not both"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nrate_of_capacity = [1.5]\n"), vec!["rate_of_capacity 1.5 is not a fraction"]),
            (format!("{server}{matrix}[slo]\nlimits = \"p99<\"\n"), vec!["[slo] limits", "is not a duration"]),
            (format!("{server}{matrix}[search]\nfactor = 1\n"), vec!["[search] factor (1) must be greater than 1"]),
            (format!("{server}{matrix}[search]\ntolerance = 0\n"), vec!["[search] tolerance (0)"]),
            (format!("{server}{matrix}[search]\nstart = 5\nmin = 10\n"), vec!["[search] start (5) must lie between min (10)"]),
            (format!("{server}{matrix}[search]\nmode = \"connections\"\nper_connection_rate = 0\n"), vec!["per_connection_rate (0)"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nrate_of_capacity = [0.5]\n[search]\nmode = \"connections\"\n"), vec!["rate_of_capacity needs [search] mode = \"rate\""]),
            (format!("{server}{matrix}[search]\nmode = \"clients\"\n"), vec!["clients"]),
            (format!("{server}[[matrix]]\nconnections = [1]\ncapacity = true\ntrials = 5\n"), vec!["[[matrix]] #1", "takes its probes' window and warmup from [search]"]),
            (format!("{server}{matrix}[[matrix]]\nconnections = [1]\ntrials = 0\n"), vec!["[[matrix]] #2: trials must be at least 1"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nduration = \"0s\"\n"), vec!["[[matrix]] #1: duration must be greater than zero"]),
            (format!("{server}[[matrix]]\nconnections = [1]\nwarmup = \"later\"\n"), vec!["line 7", "`later` is not a duration"]),
        ];
        for (text, needles) in cases {
            let err = HarnessConfig::parse(&text, "bench.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("invalid config bench.toml: "), "{err}");
            for needle in needles {
                assert!(
                    err.contains(needle),
                    "missing {needle:?} in: {err}\n--- for:\n{text}"
                );
            }
        }
    }

    /// A full server entry with every optional field parses.
    #[test]
    fn full_server_entry() {
        let text = r#"
            [run]
            duration = "1s"
            server_cpus = "0"
            client_cpus = "1"
            [[server]]
            name = "node-ws"
            command = ["./run.sh", "node-ws", "--addr", "{addr}"]
            protocol = "websocket"
            path = "/"
            ready = "port"
            env = { NODE_ENV = "production" }
            cwd = "peers"
            [[matrix]]
            connections = [1, 8]
            rate = [0, 1000]
            protocols = ["websocket"]
        "#;
        let config = HarnessConfig::parse(text, "x").unwrap();
        let server = &config.servers[0];
        assert_eq!(server.ready, Readiness::Port);
        assert_eq!(server.protocol, Protocol::WebSocket);
        assert_eq!(server.env["NODE_ENV"], "production");
        assert_eq!(config.matrices[0].rate, [0.0, 1000.0]);
        assert_eq!(config.run.client_cpus.as_deref(), Some("1"));
    }
}
