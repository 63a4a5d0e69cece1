//! What went wrong in one round trip or connect: a [`Failure`] carries the I/O error, status or
//! mismatch that explains it, and maps onto the [`ErrorKind`] it counts under. The kinds and
//! the per-kind log are report data and live in `echobench-core`.

use std::fmt;
use std::io;

pub use echobench_core::error::{ErrorEntry, ErrorKind, ErrorLog, SAMPLES_PER_KIND};

use crate::message::Mismatch;

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
    /// The TLS handshake failed; the message says why in terms of the flags that fix it
    /// (formatted at once: a failed handshake costs far more than its `String`).
    Tls(String),
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
            Failure::Tls(_) => ErrorKind::TlsFailed,
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
            Failure::Tls(detail) => f.write_str(detail),
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

impl Failure {
    /// Counts this failure in `log` (its message formatted only if it is kept as a sample).
    pub fn log_into(&self, log: &mut ErrorLog) {
        log.record(self.kind(), self.status(), self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure is logged under its kind, with its status and its message as the sample.
    #[test]
    fn logs_under_its_kind() {
        let mut log = ErrorLog::default();
        Failure::HttpStatus(503).log_into(&mut log);
        Failure::RoundTripTimeout.log_into(&mut log);
        let entry = &log.kinds[&ErrorKind::HttpStatus];
        assert_eq!(entry.samples, ["HTTP 503 instead of 200"]);
        assert_eq!(entry.by_status[&503], 1);
        assert_eq!(log.count(ErrorKind::RoundTripTimeout), 1);
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
