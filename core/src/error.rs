//! What can go wrong in a round trip, by kind. Kinds are data in the report — counted, with the
//! first few messages of each kept — so a run with errors is still a result. The client's
//! `Failure` (which carries the I/O error or the mismatch) maps onto these kinds; what crosses
//! into reports and CSV columns is only the kind, its count and a few messages.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How many messages of each kind the report keeps.
pub const SAMPLES_PER_KIND: usize = 5;

/// The categories of failure, as they appear in reports and CSV columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection was refused (or reset while it was being established): nothing listens
    /// there, or the listener was closing.
    ConnectRefused,
    /// The TCP connect (or WebSocket handshake) took longer than the connect timeout.
    ConnectTimeout,
    /// Another connect error (unreachable, no ports left, too many open files, ...).
    ConnectFailed,
    /// The WebSocket upgrade was refused or malformed (the HTTP status is kept).
    HandshakeFailed,
    /// The TLS handshake failed: a certificate that is not trusted, expired or for another
    /// name, a server that does not speak TLS, or no protocol version in common.
    TlsFailed,
    /// Writing the message failed.
    SendFailed,
    /// The peer closed (or reset) the connection while a round trip was in progress.
    ClosedByPeer,
    /// No echo within the round-trip timeout.
    RoundTripTimeout,
    /// The echo differed from the message.
    EchoMismatch,
    /// An HTTP response other than 200 (the status is kept).
    HttpStatus,
    /// The peer broke the protocol (malformed HTTP, bad WebSocket frames).
    ProtocolError,
}

impl ErrorKind {
    /// Every kind, in report order (also the order of the CSV columns).
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectFailed,
        ErrorKind::HandshakeFailed,
        ErrorKind::TlsFailed,
        ErrorKind::SendFailed,
        ErrorKind::ClosedByPeer,
        ErrorKind::RoundTripTimeout,
        ErrorKind::EchoMismatch,
        ErrorKind::HttpStatus,
        ErrorKind::ProtocolError,
    ];

    /// The snake_case name used in reports and CSV headers.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::HandshakeFailed => "handshake_failed",
            ErrorKind::TlsFailed => "tls_failed",
            ErrorKind::SendFailed => "send_failed",
            ErrorKind::ClosedByPeer => "closed_by_peer",
            ErrorKind::RoundTripTimeout => "round_trip_timeout",
            ErrorKind::EchoMismatch => "echo_mismatch",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::ProtocolError => "protocol_error",
        }
    }

    /// Whether the connection can carry on after this failure. A wrong status or a wrong echo
    /// leaves the framing intact; everything else ends the connection.
    pub fn keeps_connection(self) -> bool {
        matches!(self, ErrorKind::HttpStatus | ErrorKind::EchoMismatch)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts and samples for one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// How many times it happened.
    pub count: u64,
    /// The first few messages ([`SAMPLES_PER_KIND`]).
    pub samples: Vec<String>,
    /// Counts per HTTP status, for `http_status` and `handshake_failed`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_status: BTreeMap<u16, u64>,
}

/// Errors by kind. Only kinds that occurred are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorLog {
    /// The entries, keyed by kind.
    pub kinds: BTreeMap<ErrorKind, ErrorEntry>,
}

impl ErrorLog {
    /// Counts one error of `kind` (with the HTTP status involved, if any), keeping its
    /// message if fewer than [`SAMPLES_PER_KIND`] are kept. The message is formatted only
    /// then, so a server failing every round trip does not cost a `String` per failure.
    pub fn record(&mut self, kind: ErrorKind, status: Option<u16>, message: impl fmt::Display) {
        let entry = self.kinds.entry(kind).or_default();
        entry.count += 1;
        if entry.samples.len() < SAMPLES_PER_KIND {
            entry.samples.push(message.to_string());
        }
        if let Some(status) = status {
            *entry.by_status.entry(status).or_default() += 1;
        }
    }

    /// Adds another log's counts; samples are kept up to the limit, this log's first.
    pub fn merge(&mut self, other: &ErrorLog) {
        for (kind, theirs) in &other.kinds {
            let ours = self.kinds.entry(*kind).or_default();
            ours.count += theirs.count;
            let room = SAMPLES_PER_KIND.saturating_sub(ours.samples.len());
            ours.samples
                .extend(theirs.samples.iter().take(room).cloned());
            for (status, count) in &theirs.by_status {
                *ours.by_status.entry(*status).or_default() += count;
            }
        }
    }

    /// All errors of every kind.
    pub fn total(&self) -> u64 {
        self.kinds.values().map(|e| e.count).sum()
    }

    /// The count for one kind (0 if it never happened).
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.kinds.get(&kind).map_or(0, |e| e.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts, samples (capped) and per-status counts accumulate and merge exactly.
    #[test]
    fn records_and_merges() {
        let mut a = ErrorLog::default();
        for _ in 0..7 {
            a.record(ErrorKind::HttpStatus, Some(500), "HTTP 500 instead of 200");
        }
        a.record(ErrorKind::HttpStatus, Some(503), "HTTP 503 instead of 200");
        a.record(ErrorKind::RoundTripTimeout, None, "no echo");
        let entry = &a.kinds[&ErrorKind::HttpStatus];
        assert_eq!(entry.count, 8);
        assert_eq!(entry.samples.len(), SAMPLES_PER_KIND);
        assert_eq!(entry.samples[0], "HTTP 500 instead of 200");
        assert_eq!(entry.by_status, BTreeMap::from([(500, 7), (503, 1)]));

        let mut b = ErrorLog::default();
        b.record(ErrorKind::HttpStatus, Some(503), "HTTP 503 instead of 200");
        b.record(ErrorKind::ConnectTimeout, None, "connect timed out");
        a.merge(&b);
        assert_eq!(a.total(), 11);
        assert_eq!(a.count(ErrorKind::HttpStatus), 9);
        assert_eq!(a.kinds[&ErrorKind::HttpStatus].by_status[&503], 2);
        assert_eq!(a.count(ErrorKind::ConnectTimeout), 1);
        assert_eq!(a.count(ErrorKind::EchoMismatch), 0);
    }

    /// Kinds serialize by their snake_case names, matching `name()`.
    #[test]
    fn kind_names() {
        for kind in ErrorKind::ALL {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
    }
}
