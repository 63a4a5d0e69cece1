//! Round-trip payloads. Every message is unique — its first 16 bytes are the round trip's id
//! in hexadecimal — so an echo that is stale (the answer to an earlier message), truncated or
//! corrupted never matches. Payloads are printable ASCII, so the same bytes are valid
//! WebSocket text.

use std::fmt;

/// How many leading bytes carry the id (a `u64` in hex). Shorter messages carry its low digits.
pub const ID_DIGITS: usize = 16;

const FILLER: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8; 16] = b"0123456789abcdef";

pub use echobench_core::config::MIN_JSON_SIZE;

/// Where the id's 16 hex digits start in a JSON payload (after `{"id":"`).
pub const JSON_ID_AT: usize = 7;

/// Fills `buf` with a compact JSON object of exactly `buf.len()` bytes (at least
/// [`MIN_JSON_SIZE`]): `{"id":"0000000000000000","pad":"abc..."}`. Its keys are in both sorted
/// and insertion order and it has no numbers or escapes, so any compact re-serialization
/// (serde_json, Python's json, JavaScript's JSON.stringify) reproduces it byte for byte.
/// Stamp the id with [`stamp`] on `buf[JSON_ID_AT..JSON_ID_AT + 16]`.
pub fn fill_json(buf: &mut [u8]) {
    let pad = buf.len().saturating_sub(MIN_JSON_SIZE);
    let mut text = Vec::with_capacity(buf.len());
    text.extend_from_slice(b"{\"id\":\"0000000000000000\",\"pad\":\"");
    text.extend((0..pad).map(|i| FILLER[i % FILLER.len()]));
    text.extend_from_slice(b"\"}");
    let n = buf.len().min(text.len());
    buf[..n].copy_from_slice(&text[..n]);
}

/// Fills `buf` with the filler pattern (done once per buffer; [`stamp`] then changes the id).
pub fn fill(buf: &mut [u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = FILLER[i % FILLER.len()];
    }
}

/// Writes `id` as lowercase hex into the first `min(16, len)` bytes: the low-order digits
/// when the message is shorter than 16 bytes.
pub fn stamp(buf: &mut [u8], id: u64) {
    let digits = buf.len().min(ID_DIGITS);
    let mut value = id;
    for byte in buf[..digits].iter_mut().rev() {
        *byte = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// How an echo differed from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Bytes sent.
    pub sent: usize,
    /// Bytes echoed.
    pub echoed: usize,
    /// The first position where they differ (`None` when one is a prefix of the other).
    pub at: Option<usize>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "echo differs from the message at byte {at} ({} bytes sent, {} echoed)",
                self.sent, self.echoed
            ),
            None => write!(
                f,
                "echo has {} bytes, the message had {}",
                self.echoed, self.sent
            ),
        }
    }
}

/// Checks that `echo` is byte-for-byte `sent`.
pub fn verify(sent: &[u8], echo: &[u8]) -> Result<(), Mismatch> {
    if sent == echo {
        return Ok(());
    }
    Err(Mismatch {
        sent: sent.len(),
        echoed: echo.len(),
        at: sent.iter().zip(echo).position(|(a, b)| a != b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size: usize, id: u64) -> Vec<u8> {
        let mut buf = vec![0; size];
        fill(&mut buf);
        stamp(&mut buf, id);
        buf
    }

    /// The id is written in hex at the front; short messages keep its low digits.
    #[test]
    fn stamps_ids() {
        let cases: [(usize, u64, &[u8]); 6] = [
            (0, 7, b""),
            (1, 0xab, b"b"),
            (4, 0x1234_5678, b"5678"),
            (16, 0xdead_beef, b"00000000deadbeef"),
            (20, u64::MAX, b"ffffffffffffffffqrst"),
            (18, 1, b"0000000000000001qr"),
        ];
        for (size, id, expected) in cases {
            assert_eq!(message(size, id), expected, "size {size} id {id:#x}");
        }
    }

    /// Consecutive ids give different messages at every size of at least one byte.
    #[test]
    fn consecutive_messages_differ() {
        for size in [1, 2, 15, 16, 17, 4096] {
            assert_ne!(message(size, 41), message(size, 42), "size {size}");
        }
    }

    /// Verification reports where and how an echo differs.
    #[test]
    fn verification() {
        let sent = message(32, 9);
        assert_eq!(verify(&sent, &sent), Ok(()));
        let mut flipped = sent.clone();
        flipped[20] ^= 1;
        assert_eq!(
            verify(&sent, &flipped),
            Err(Mismatch {
                sent: 32,
                echoed: 32,
                at: Some(20)
            })
        );
        assert_eq!(
            verify(&sent, &sent[..31]),
            Err(Mismatch {
                sent: 32,
                echoed: 31,
                at: None
            })
        );
        assert_eq!(
            verify(&sent, &message(32, 10)).unwrap_err().to_string(),
            "echo differs from the message at byte 15 (32 bytes sent, 32 echoed)"
        );
    }

    /// JSON payloads are valid JSON of the exact size, re-serialize to themselves, and carry
    /// the id where it is stamped.
    #[test]
    fn json_payloads() {
        for size in [MIN_JSON_SIZE, 35, 64, 4096] {
            let mut buf = vec![0u8; size];
            fill_json(&mut buf);
            stamp(&mut buf[JSON_ID_AT..JSON_ID_AT + ID_DIGITS], 0xabc);
            let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(value["id"], "0000000000000abc");
            assert_eq!(serde_json::to_vec(&value).unwrap(), buf, "size {size}");
        }
    }

    /// Messages are printable ASCII (valid WebSocket text).
    #[test]
    fn payloads_are_ascii() {
        assert!(message(1000, u64::MAX).iter().all(u8::is_ascii_graphic));
    }
}
