//! `manifest.json`: everything needed to judge and reproduce a run — the exact command line,
//! the resolved config, the source revision, compiler and binary versions, the machine, the
//! CPU pinning, start and end, CPU steal, and whether the run completed.

use serde::{Deserialize, Serialize};

use crate::config::HarnessConfig;
use crate::machine::{Machine, Revision};

/// The manifest's schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// A run's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `echo-harness` and its version.
    pub tool: String,
    /// The exact command line of the harness.
    pub command_line: Vec<String>,
    /// Where the config came from (a path, or "built-in default").
    pub config_source: String,
    /// `--quick` was given.
    pub quick: bool,
    /// The resolved config (after --quick and other overrides).
    pub config: HarnessConfig,
    /// Source revision.
    pub revision: Revision,
    /// Compiler of the harness.
    pub rustc: String,
    /// The benchmarked binaries and what they say their version is.
    pub binaries: Binaries,
    /// The machine.
    pub machine: Machine,
    /// CPU placement.
    pub pinning: Pinning,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339 (`None` while running).
    pub ended_at: Option<String>,
    /// The machine's CPU steal over the run so far, percent.
    pub steal_percent: Option<f64>,
    /// The run did not finish (interrupted, or still running).
    pub incomplete: bool,
    /// Cells in the matrix.
    pub cells: usize,
    /// Trials recorded (every attempt).
    pub trials_recorded: usize,
    /// Trials that failed.
    pub trials_failed: usize,
}

/// The binaries used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binaries {
    /// echo-server path.
    pub server: String,
    /// `echo-server --version`.
    pub server_version: String,
    /// echo-client path.
    pub client: String,
    /// `echo-client --version`.
    pub client_version: String,
}

/// Where servers and clients ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// Server CPUs (`taskset -c` list).
    pub server_cpus: String,
    /// Client CPUs.
    pub client_cpus: String,
    /// echo-client worker threads (one per client CPU).
    pub client_threads: usize,
    /// `{threads}` given to servers (one per server CPU).
    pub server_threads: usize,
}
