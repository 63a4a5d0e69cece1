//! Fault injection at run time: the per-server state behind [`Faults`] that every
//! implementation consults before it sends an echo. With no faults configured every check is a
//! branch on `None`, so the benchmark path pays nothing measurable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::options::Faults;

/// How early an echo held by `max_rate` may leave before its slot (see [`FaultPlan::hold`]).
const RATE_EARLY: Duration = Duration::from_millis(1);

/// Shared, per-server fault state. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FaultPlan {
    faults: Faults,
    /// Stalls are scheduled relative to this instant, the moment the server started.
    started: Instant,
    /// Echoes sent so far across the whole server; only touched when `corrupt_every` is set.
    echoes: AtomicU64,
    /// With `max_rate`: the next free send slot, in nanoseconds since `started`.
    next_slot: AtomicU64,
}

impl FaultPlan {
    /// Starts the fault clock now.
    pub fn new(faults: Faults) -> Self {
        FaultPlan {
            faults,
            started: Instant::now(),
            echoes: AtomicU64::new(0),
            next_slot: AtomicU64::new(0),
        }
    }

    /// The faults this plan injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Waits as the faults require before an echo is sent: the CPU cost, the fixed delay, to
    /// the end of a stall window if the echo falls inside one, then for its turn under the
    /// rate limit.
    pub async fn hold(&self) {
        if let Some(cost) = self.faults.echo_cost {
            burn(cost);
        }
        if let Some(delay) = self.faults.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(until) = self.stalled_until(Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        if let Some(slot) = self.rate_slot(Instant::now()) {
            // The timer wakes up to a millisecond late, which at a few thousand echoes per
            // second would hold back more than the limit does; waking up to RATE_EARLY
            // before the slot keeps the long-run rate exact (slots stay 1 / max_rate apart)
            // and the jitter under a millisecond.
            if let Some(wake) = slot.checked_sub(RATE_EARLY).filter(|w| *w > Instant::now()) {
                tokio::time::sleep_until(wake).await;
            }
        }
    }

    /// With `max_rate`, reserves the next send slot for an echo ready at `now` and returns it
    /// when it lies in the future: slots are `1 / max_rate` apart, so at most `max_rate` echoes
    /// leave per second and the rest queue in arrival order.
    pub fn rate_slot(&self, now: Instant) -> Option<Instant> {
        let rate = self.faults.max_rate?;
        let period = 1_000_000_000 / u64::from(rate.get());
        let now_ns = u64::try_from(now.saturating_duration_since(self.started).as_nanos())
            .unwrap_or(u64::MAX);
        let mut next = self.next_slot.load(Ordering::Relaxed);
        loop {
            let slot = next.max(now_ns);
            match self.next_slot.compare_exchange_weak(
                next,
                slot.saturating_add(period),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return (slot > now_ns).then(|| self.started + Duration::from_nanos(slot));
                }
                Err(current) => next = current,
            }
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

/// Keeps the calling thread busy for `cost`: the echo's CPU cost is spent, not slept, so it
/// competes for the server's CPU the way real work does.
fn burn(cost: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < cost {
        std::hint::spin_loop();
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

    /// Under a rate limit of 1,000/s, echoes ready together get slots 1 ms apart in arrival
    /// order; once the queue has drained an echo goes at once.
    #[test]
    fn rate_slots() {
        let p = plan(Faults {
            max_rate: std::num::NonZeroU32::new(1000),
            ..Faults::default()
        });
        let t0 = p.started;
        let ms = Duration::from_millis;
        let slots: Vec<Option<Instant>> = (0..3).map(|_| p.rate_slot(t0)).collect();
        assert_eq!(slots, [None, Some(t0 + ms(1)), Some(t0 + ms(2))]);
        assert_eq!(p.rate_slot(t0 + ms(10)), None);
        assert_eq!(p.rate_slot(t0 + ms(10)), Some(t0 + ms(11)));
        assert_eq!(plan(Faults::default()).rate_slot(t0), None);
    }

    /// The CPU cost is spent before the echo, at least as long as asked.
    #[test]
    fn echo_cost_burns() {
        let start = std::time::Instant::now();
        burn(Duration::from_millis(2));
        assert!(start.elapsed() >= Duration::from_millis(2));
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
