//! What a server is told at start: limits, timeouts and the faults it should inject. The same
//! [`Options`] drive the `echo-server` binary (from flags) and the [`crate::Fixture`] builder.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

/// Default largest message (HTTP body or WebSocket message) a server accepts: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Default time a client has to send a complete HTTP request head or WebSocket handshake.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest WebSocket read buffer accepted.
pub const MIN_WS_READ_BUFFER: usize = 256;

/// How a server behaves. `Options::default()` is a well-behaved server with no faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Largest HTTP request body or WebSocket message, in bytes. Larger bodies get 413,
    /// larger WebSocket messages close 1009. Raw TCP has no messages and ignores it.
    pub max_message: usize,
    /// How long an HTTP request head or WebSocket handshake may take to arrive before the
    /// connection is closed; this is what defeats slowloris clients.
    pub header_timeout: Duration,
    /// WebSocket servers: bytes of read buffer each connection preallocates. `None` keeps
    /// tungstenite's default (128 KiB), which is what a user of the library gets; smaller
    /// buffers cost far less memory traffic with many connections (see BENCHMARKS.md).
    pub ws_read_buffer: Option<usize>,
    /// Faults to inject, for testing clients.
    pub faults: Faults,
    /// Serve over TLS with this identity (`--tls`); `None` serves plaintext.
    pub tls: Option<crate::tls::Identity>,
    /// The broadcast relay: `/broadcast` on the WebSocket servers, `tcp` with `tcp_relay`.
    pub broadcast: crate::broadcast::Broadcast,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message: DEFAULT_MAX_MESSAGE,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            ws_read_buffer: None,
            faults: Faults::default(),
            tls: None,
            broadcast: crate::broadcast::Broadcast::default(),
        }
    }
}

impl Options {
    /// Checks that the options are usable; the message names the offending setting.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.header_timeout.is_zero() {
            return Err(OptionsError::ZeroHeaderTimeout);
        }
        if let Some(bytes) = self.ws_read_buffer.filter(|&b| b < MIN_WS_READ_BUFFER) {
            return Err(OptionsError::WsReadBuffer(bytes));
        }
        if let Some(stall) = self.faults.stall {
            stall.validate()?;
        }
        if let Some(cost) = self.faults.echo_cost.filter(|c| *c > MAX_ECHO_COST) {
            return Err(OptionsError::EchoCost(cost));
        }
        if let Some(identity) = &self.tls {
            identity.validate()?;
        }
        Ok(())
    }
}

/// Misbehaviour a server can be asked to show, so that clients can be tested against it.
/// Every field is off (`None`) by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every echo is sent this long after its request or message arrived.
    pub delay: Option<Duration>,
    /// WebSocket: close 1000 after this many messages on a connection. HTTP: answer the Nth
    /// request on a connection with `Connection: close` and close it. TCP: close after N reads.
    pub close_after: Option<NonZeroU64>,
    /// Every Nth echo, counted across the whole server, has one byte changed (see
    /// [`crate::fault::corrupt`]).
    pub corrupt_every: Option<NonZeroU64>,
    /// Periodically the whole server stops answering, for coordinated-omission tests.
    pub stall: Option<Stall>,
    /// Every echo first burns this much CPU on the thread serving it: a handicap with a known
    /// cost per round trip (for checking that a comparison detects it).
    pub echo_cost: Option<Duration>,
    /// At most this many echoes per second leave the whole server; echoes beyond the rate
    /// queue for their turn: a server with a known capacity (for checking a capacity search).
    pub max_rate: Option<NonZeroU32>,
}

/// A periodic stall: starting `every` after the server starts, and again each `every` after
/// that, no echo is sent for `duration`; echoes due in that window go out when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// The period between the starts of two stalls.
    pub every: Duration,
    /// How long each stall lasts; shorter than `every`.
    pub duration: Duration,
}

impl Stall {
    /// Checks that a stall leaves the server answering some of the time.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.every.is_zero() || self.duration.is_zero() || self.duration >= self.every {
            return Err(OptionsError::Stall {
                every: self.every,
                duration: self.duration,
            });
        }
        Ok(())
    }
}

/// The largest `--echo-cost`: the cost is spent busy on the serving thread, which answers
/// nothing else (not even a shutdown) meanwhile.
pub const MAX_ECHO_COST: Duration = Duration::from_secs(1);

/// Options that cannot work, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A zero header timeout would close every connection at once.
    #[error("--header-timeout must be greater than zero")]
    ZeroHeaderTimeout,
    /// A WebSocket read buffer too small to be useful.
    #[error("--ws-read-buffer {0} is too small; use {MIN_WS_READ_BUFFER} bytes or more")]
    WsReadBuffer(usize),
    /// A CPU cost per echo so long the server could not be stopped.
    #[error(
        "--echo-cost {} is longer than {}: the serving thread is busy for that long per echo and answers nothing else, shutdown included",
        humantime::format_duration(*.0),
        humantime::format_duration(MAX_ECHO_COST)
    )]
    EchoCost(Duration),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The stall must be shorter than its period, and both non-zero.
    #[error(
        "--stall-for ({}) must be greater than zero and shorter than --stall-every ({})",
        humantime::format_duration(*duration),
        humantime::format_duration(*every)
    )]
    Stall {
        /// The period given.
        every: Duration,
        /// The stall length given.
        duration: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stall as long as its period, or zero, is refused with both values in the message.
    #[test]
    fn stall_validation() {
        let cases = [
            (1000, 200, true),
            (1000, 999, true),
            (1000, 1000, false),
            (1000, 0, false),
            (0, 0, false),
        ];
        for (every, duration, ok) in cases {
            let stall = Stall {
                every: Duration::from_millis(every),
                duration: Duration::from_millis(duration),
            };
            assert_eq!(stall.validate().is_ok(), ok, "{stall:?}");
        }
        let err = Stall {
            every: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--stall-for (2s) must be greater than zero and shorter than --stall-every (1s)"
        );
    }
}
