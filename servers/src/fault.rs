//! Fault injection at run time: the per-server state behind [`Faults`] that every
//! implementation consults before it sends an echo. With no faults configured every check is a
//! branch on `None`, so the benchmark path pays nothing measurable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::options::Faults;

/// Shared, per-server fault state. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FaultPlan {
    faults: Faults,
    /// Stalls are scheduled relative to this instant, the moment the server started.
    started: Instant,
    /// Echoes sent so far across the whole server; only touched when `corrupt_every` is set.
    echoes: AtomicU64,
}

impl FaultPlan {
    /// Starts the fault clock now.
    pub fn new(faults: Faults) -> Self {
        FaultPlan {
            faults,
            started: Instant::now(),
            echoes: AtomicU64::new(0),
        }
    }

    /// The faults this plan injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Waits as the faults require before an echo is sent: the fixed delay, then to the end
    /// of a stall window if the echo falls inside one.
    pub async fn hold(&self) {
        if let Some(delay) = self.faults.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(until) = self.stalled_until(Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// When `now` falls in a stall window, the instant that window ends.
    pub fn stalled_until(&self, now: Instant) -> Option<Instant> {
        let stall = self.faults.stall?;
        let since_start = now.saturating_duration_since(self.started);
        let every = stall.every.as_nanos();
        let period = since_start.as_nanos() / every;
        if period == 0 {
            return None;
        }
        let into_period = since_start.as_nanos() % every;
        if into_period < stall.duration.as_nanos() {
            let remaining = stall.duration.as_nanos() - into_period;
            Some(now + Duration::from_nanos(u64::try_from(remaining).unwrap_or(u64::MAX)))
        } else {
            None
        }
    }

    /// Counts one echo and says whether it is the one to corrupt.
    pub fn next_echo_is_corrupt(&self) -> bool {
        match self.faults.corrupt_every {
            None => false,
            Some(every) => {
                let n = self.echoes.fetch_add(1, Ordering::Relaxed) + 1;
                n.is_multiple_of(every.get())
            }
        }
    }

    /// Whether a connection that has now echoed `count` messages (or answered `count`
    /// requests, or done `count` reads) must be closed.
    pub fn close_now(&self, count: u64) -> bool {
        self.faults.close_after.is_some_and(|n| count >= n.get())
    }
}

/// Changes exactly one byte of `payload` so an echo check must fail, keeping valid UTF-8 valid
/// (a WebSocket text echo must stay text): the lowest bit of the last byte is flipped. In
/// UTF-8 the last byte is ASCII or a continuation byte, and flipping bit 0 keeps either kind in
/// its allowed range. An empty payload has no byte to change, so one byte (`!`) is added.
pub fn corrupt(payload: &mut Vec<u8>) {
    match payload.last_mut() {
        Some(last) => *last ^= 0x01,
        None => payload.push(b'!'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Stall;
    use std::num::NonZeroU64;

    fn plan(faults: Faults) -> FaultPlan {
        FaultPlan::new(faults)
    }

    /// Stall windows start at every multiple of the period (not at 0) and last `duration`.
    #[test]
    fn stall_windows() {
        let p = plan(Faults {
            stall: Some(Stall {
                every: Duration::from_millis(1000),
                duration: Duration::from_millis(200),
            }),
            ..Faults::default()
        });
        let t0 = p.started;
        let ms = Duration::from_millis;
        let cases = [
            (0, None),
            (500, None),
            (999, None),
            (1000, Some(1200)),
            (1150, Some(1200)),
            (1199, Some(1200)),
            (1200, None),
            (2000, Some(2200)),
            (3100, Some(3200)),
        ];
        for (at, until) in cases {
            assert_eq!(
                p.stalled_until(t0 + ms(at)),
                until.map(|u| t0 + ms(u)),
                "at {at} ms"
            );
        }
    }

    /// Exactly every Nth echo is corrupt, counted across calls.
    #[test]
    fn corrupt_every_third() {
        let p = plan(Faults {
            corrupt_every: NonZeroU64::new(3),
            ..Faults::default()
        });
        let picks: Vec<bool> = (0..7).map(|_| p.next_echo_is_corrupt()).collect();
        assert_eq!(picks, [false, false, true, false, false, true, false]);
        assert!(!plan(Faults::default()).next_echo_is_corrupt());
    }

    /// Corruption changes one byte, keeps UTF-8 valid, and gives an empty payload a byte.
    #[test]
    fn corrupt_changes_one_byte_and_keeps_utf8() {
        let cases: [&str; 5] = ["", "a", "hello", "grüß", "日本語"];
        for text in cases {
            let mut bytes = text.as_bytes().to_vec();
            corrupt(&mut bytes);
            assert_ne!(bytes, text.as_bytes());
            assert!(std::str::from_utf8(&bytes).is_ok(), "{text:?} -> {bytes:?}");
            if !text.is_empty() {
                let changed = bytes
                    .iter()
                    .zip(text.as_bytes())
                    .filter(|(a, b)| a != b)
                    .count();
                assert_eq!(changed, 1);
                assert_eq!(bytes.len(), text.len());
            }
        }
    }

    /// close_now is false without the fault and true from the Nth event on.
    #[test]
    fn close_after_counts() {
        let p = plan(Faults {
            close_after: NonZeroU64::new(2),
            ..Faults::default()
        });
        assert_eq!([1, 2, 3].map(|n| p.close_now(n)), [false, true, true]);
        assert!(!plan(Faults::default()).close_now(1_000_000));
    }
}
