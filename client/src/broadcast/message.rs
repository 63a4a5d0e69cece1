//! Broadcast messages: each carries its publisher, its sequence number in that publisher's
//! stream and its send time, so that every receiver can tell on its own what it got, in what
//! order, and how late. The header is lowercase hex after a marker byte (`B`), the rest the
//! echo payloads' filler, so a message is printable ASCII (valid WebSocket text) and a
//! corrupted byte anywhere is caught.

use super::super::message::fill;

/// Bytes of the header: the marker, the publisher (8 hex digits), the sequence number (16)
/// and the send time in nanoseconds since the run's start (16).
pub const HEADER: usize = 1 + 8 + 16 + 16;

/// The smallest broadcast message.
pub const MIN_SIZE: usize = HEADER;
const _: () = assert!(MIN_SIZE == echobench_core::broadcast::MIN_SIZE);

const MARKER: u8 = b'B';

/// What a message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher sent it (0-based).
    pub publisher: u32,
    /// Its place in that publisher's stream (0-based).
    pub seq: u64,
    /// When it was sent: nanoseconds since the run's start.
    pub sent_ns: u64,
}

/// Why a received message is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Its length is not the run's message size.
    #[error("a {got}-byte message where every message is {want} bytes")]
    Length {
        /// Bytes received.
        got: usize,
        /// `--size`.
        want: usize,
    },
    /// The header is not a marker and hex digits.
    #[error("a message whose header is not a broadcast header")]
    Header,
    /// A byte after the header differs from what the publisher sent.
    #[error("a message corrupted at byte {0}")]
    Body(usize),
}

/// Writes a message of `buf.len()` bytes (at least [`MIN_SIZE`]) for `stamp`.
pub fn encode(buf: &mut [u8], stamp: Stamp) {
    fill(buf);
    buf[0] = MARKER;
    hex(&mut buf[1..9], u64::from(stamp.publisher));
    hex(&mut buf[9..25], stamp.seq);
    hex(&mut buf[25..41], stamp.sent_ns);
}

/// Reads and checks a message of the run's `size`.
pub fn decode(message: &[u8], size: usize) -> Result<Stamp, Malformed> {
    if message.len() != size {
        return Err(Malformed::Length {
            got: message.len(),
            want: size,
        });
    }
    if message.len() < HEADER || message[0] != MARKER {
        return Err(Malformed::Header);
    }
    let publisher = unhex(&message[1..9]).ok_or(Malformed::Header)?;
    let seq = unhex(&message[9..25]).ok_or(Malformed::Header)?;
    let sent_ns = unhex(&message[25..41]).ok_or(Malformed::Header)?;
    let mut expected = vec![0u8; size];
    fill(&mut expected);
    if let Some(at) = (HEADER..size).find(|&i| message[i] != expected[i]) {
        return Err(Malformed::Body(at));
    }
    Ok(Stamp {
        publisher: u32::try_from(publisher).map_err(|_| Malformed::Header)?,
        seq,
        sent_ns,
    })
}

fn hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn unhex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &d| {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message reads back as what was written, at the smallest size and larger.
    #[test]
    fn round_trip() {
        for size in [MIN_SIZE, 64, 4096] {
            let stamp = Stamp {
                publisher: 0xdead_beef,
                seq: u64::MAX - 1,
                sent_ns: 1_234_567_890,
            };
            let mut buf = vec![0u8; size];
            encode(&mut buf, stamp);
            assert!(buf.is_ascii());
            assert_eq!(decode(&buf, size), Ok(stamp));
        }
    }

    /// Every way a message can be wrong is named: length, header, body.
    #[test]
    fn malformed() {
        let stamp = Stamp {
            publisher: 3,
            seq: 7,
            sent_ns: 9,
        };
        let mut good = vec![0u8; 64];
        encode(&mut good, stamp);
        let cases: [(Vec<u8>, Malformed); 4] = [
            (good[..63].to_vec(), Malformed::Length { got: 63, want: 64 }),
            ([b"X".as_slice(), &good[1..]].concat(), Malformed::Header),
            (
                [&good[..5], b"g".as_slice(), &good[6..]].concat(),
                Malformed::Header,
            ),
            (
                [&good[..50], b"!".as_slice(), &good[51..]].concat(),
                Malformed::Body(50),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(decode(&message, 64), Err(expected));
        }
    }
}
