//! What can go wrong in a round trip, by kind. Kinds are data in the report — counted, with the
//! first few messages of each kept — so a run with errors is still a result.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::message::Mismatch;

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
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectFailed,
        ErrorKind::HandshakeFailed,
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

/// One failure, carrying just enough to explain itself. Formatting happens only for the few
/// that are kept as samples, so a server failing every round trip does not cost a `String`
/// per failure.
#[derive(Debug)]
pub enum Failure {
    /// Connect refused.
    ConnectRefused(io::Error),
    /// Connect or handshake timed out.
    ConnectTimeout,
    /// Other connect error.
    ConnectFailed(io::Error),
    /// WebSocket upgrade failed, with the HTTP status when there was a response.
    HandshakeFailed {
        /// The status of the refusal, if the server answered at all.
        status: Option<u16>,
        /// What went wrong.
        detail: String,
    },
    /// Write failed.
    SendFailed(io::Error),
    /// The peer closed or reset the connection mid round trip.
    ClosedByPeer(String),
    /// No echo in time.
    RoundTripTimeout,
    /// Wrong echo.
    EchoMismatch(Mismatch),
    /// A WebSocket echo of the other message type (text for binary or the reverse).
    WrongMessageType {
        /// The type sent.
        sent: &'static str,
        /// The type echoed.
        echoed: &'static str,
    },
    /// Non-200 HTTP response.
    HttpStatus(u16),
    /// The peer broke the protocol.
    ProtocolError(String),
}

impl Failure {
    /// The category this failure counts under.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::ConnectRefused(_) => ErrorKind::ConnectRefused,
            Failure::ConnectTimeout => ErrorKind::ConnectTimeout,
            Failure::ConnectFailed(_) => ErrorKind::ConnectFailed,
            Failure::HandshakeFailed { .. } => ErrorKind::HandshakeFailed,
            Failure::SendFailed(_) => ErrorKind::SendFailed,
            Failure::ClosedByPeer(_) => ErrorKind::ClosedByPeer,
            Failure::RoundTripTimeout => ErrorKind::RoundTripTimeout,
            Failure::EchoMismatch(_) | Failure::WrongMessageType { .. } => ErrorKind::EchoMismatch,
            Failure::HttpStatus(_) => ErrorKind::HttpStatus,
            Failure::ProtocolError(_) => ErrorKind::ProtocolError,
        }
    }

    /// The HTTP status involved, for the per-status counts.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::HttpStatus(status) => Some(*status),
            Failure::HandshakeFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// Classifies an I/O error met while connecting. A reset during the handshake (a listener
    /// closing as the connection arrives) is a refusal too.
    pub fn connect(err: io::Error) -> Failure {
        match err.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Failure::ConnectRefused(err),
            io::ErrorKind::TimedOut => Failure::ConnectTimeout,
            _ => Failure::ConnectFailed(err),
        }
    }

    /// Classifies an I/O error met while reading an echo.
    pub fn read(err: &io::Error) -> Failure {
        Failure::ClosedByPeer(err.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ConnectRefused(err) => write!(f, "connect refused: {err}"),
            Failure::ConnectTimeout => f.write_str("connect timed out"),
            Failure::ConnectFailed(err) => write!(f, "connect failed: {err}"),
            Failure::HandshakeFailed {
                status: Some(status),
                detail,
            } => write!(f, "handshake refused with HTTP {status}: {detail}"),
            Failure::HandshakeFailed {
                status: None,
                detail,
            } => {
                write!(f, "handshake failed: {detail}")
            }
            Failure::SendFailed(err) => write!(f, "send failed: {err}"),
            Failure::ClosedByPeer(detail) => write!(f, "closed by peer: {detail}"),
            Failure::RoundTripTimeout => f.write_str("no echo within the round-trip timeout"),
            Failure::EchoMismatch(mismatch) => mismatch.fmt(f),
            Failure::WrongMessageType { sent, echoed } => {
                write!(f, "a {sent} message was echoed as {echoed}")
            }
            Failure::HttpStatus(status) => write!(f, "HTTP {status} instead of 200"),
            Failure::ProtocolError(detail) => write!(f, "protocol error: {detail}"),
        }
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
    /// Counts `failure`, keeping its message if fewer than [`SAMPLES_PER_KIND`] are kept.
    pub fn record(&mut self, failure: &Failure) {
        let entry = self.kinds.entry(failure.kind()).or_default();
        entry.count += 1;
        if entry.samples.len() < SAMPLES_PER_KIND {
            entry.samples.push(failure.to_string());
        }
        if let Some(status) = failure.status() {
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
            a.record(&Failure::HttpStatus(500));
        }
        a.record(&Failure::HttpStatus(503));
        a.record(&Failure::RoundTripTimeout);
        let entry = &a.kinds[&ErrorKind::HttpStatus];
        assert_eq!(entry.count, 8);
        assert_eq!(entry.samples.len(), SAMPLES_PER_KIND);
        assert_eq!(entry.samples[0], "HTTP 500 instead of 200");
        assert_eq!(entry.by_status, BTreeMap::from([(500, 7), (503, 1)]));

        let mut b = ErrorLog::default();
        b.record(&Failure::HttpStatus(503));
        b.record(&Failure::ConnectTimeout);
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

    /// I/O errors while connecting map to the right kinds.
    #[test]
    fn connect_errors() {
        let cases = [
            (io::ErrorKind::ConnectionRefused, ErrorKind::ConnectRefused),
            (io::ErrorKind::ConnectionReset, ErrorKind::ConnectRefused),
            (io::ErrorKind::TimedOut, ErrorKind::ConnectTimeout),
            (io::ErrorKind::AddrNotAvailable, ErrorKind::ConnectFailed),
        ];
        for (io_kind, kind) in cases {
            assert_eq!(Failure::connect(io::Error::from(io_kind)).kind(), kind);
        }
    }
}
