//! `[run]`: how every trial of a run is made (windows, trials, pinning, timeouts, re-runs) and
//! what the machine and the client are set to for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Measured window of each run.
    #[serde(with = "duration")]
    pub duration: Duration,
    /// Load before it, discarded.
    #[serde(with = "duration")]
    pub warmup: Duration,
    /// Repetitions of every cell, interleaved.
    pub trials: u32,
    /// Pause between runs, so one run's TIME_WAIT sockets and caches settle.
    #[serde(with = "duration")]
    pub cooldown: Duration,
    /// CPUs for servers (`taskset -c` syntax); default: the first half of the allowed CPUs.
    pub server_cpus: Option<String>,
    /// CPUs for the client; default: the other half.
    pub client_cpus: Option<String>,
    /// Longest wait for a server to become ready.
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
    /// The client's round-trip and connect timeout.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Time a server gets to exit after SIGTERM before SIGKILL.
    #[serde(with = "duration")]
    pub stop_grace: Duration,
    /// Times a trial that cannot be trusted (steal above 5%; at a fixed rate also a saturated
    /// client or a pacer behind its schedule) is run again; only the last run counts.
    pub redo: u32,
    /// On a KVM guest with the cpuidle-haltpoll driver: poll this long before halting an idle
    /// CPU, for the run (restored after; needs root, a warning where it cannot be applied).
    /// Unset: the machine as it is. Either way the manifest records what the run measured with.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub halt_poll: Option<Duration>,
    /// echo-client's `--pacer-spin` for open-loop cells and capacity probes (unset: the
    /// client's default). The client core is the client's alone, so spinning there costs the
    /// servers nothing but the host's attention.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub pacer_spin: Option<Duration>,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            trials: 3,
            cooldown: Duration::from_millis(250),
            server_cpus: None,
            client_cpus: None,
            ready_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(5),
            redo: 2,
            halt_poll: None,
            pacer_spin: None,
        }
    }
}
