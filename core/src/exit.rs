//! Exit codes that one binary reads from another. The harness runs `echo-client` and
//! `echo-server` as children and decides what a trial's outcome was from these codes, so they
//! are defined once, here, for the writer and the reader alike.

/// `echo-client`'s exit codes (documented in its `--help` and the README).
pub mod client {
    /// The run completed; errors during the load are data in the report.
    pub const OK: u8 = 0;
    /// The run could not be carried out, or its output could not be written.
    pub const FAILURE: u8 = 1;
    /// Invalid flags or target (including a non-loopback target without --allow-remote).
    pub const USAGE: u8 = 2;
    /// The target could not be reached when the run started, or not every connection opened
    /// within the warmup's timeout.
    pub const UNREACHABLE: u8 = 3;
    /// Every round trip failed.
    pub const ALL_FAILED: u8 = 4;
    /// The run completed but breached an objective of `--slo` (or was stopped by
    /// `--slo-abort`).
    pub const SLO_BREACHED: u8 = 5;
    /// Stopped by SIGINT/SIGTERM; the outputs cover what ran.
    pub const INTERRUPTED: u8 = 130;

    /// Whether a run that exited with `code` (`None`: killed by a signal) wrote its report:
    /// the load ran, whatever it found.
    pub fn reported(code: Option<i32>) -> bool {
        matches!(
            code.and_then(|c| u8::try_from(c).ok()),
            Some(OK | ALL_FAILED | SLO_BREACHED | INTERRUPTED)
        )
    }
}

/// `echo-server`'s exit codes (documented in the README).
pub mod server {
    /// Stopped by SIGINT/SIGTERM after a graceful shutdown.
    pub const OK: u8 = 0;
    /// The server could not start (for example, the address could not be bound).
    pub const FAILURE: u8 = 1;
    /// Invalid flags.
    pub const USAGE: u8 = 2;
}
