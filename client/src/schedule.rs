//! Open-loop pacing (`--rate`): when each connection should send, and how late it was.
//!
//! The total rate R is spread evenly over the C connections: connection `i` sends every C/R
//! seconds, its first send offset by i/R so the connections interleave instead of firing
//! together. Intended send times never move, whatever the server does; a connection that is
//! still waiting for an echo when its next send is due sends as soon as it can, and the time
//! it was held back counts against the server (coordinated-omission correction, as in wrk2).

use std::time::Duration;

use tokio::time::Instant;

/// The intended send times of one connection.
#[derive(Debug, Clone)]
pub struct Schedule {
    origin: Instant,
    /// Offset of this connection's first send, in nanoseconds.
    offset: u128,
    /// Nanoseconds between this connection's sends.
    period: u128,
    /// Index of the next send.
    next: u128,
    /// The connection's index, the connections and the rate: with `--stages`, send `n` of
    /// this connection is send `index + n * connections` of the whole profile.
    index: u32,
    connections: u32,
    rate: f64,
}

impl Schedule {
    /// The schedule of connection `index` of `connections`, sharing `rate` round trips per
    /// second in total, starting at `origin`.
    pub fn new(origin: Instant, rate: f64, connections: u32, index: u32) -> Schedule {
        let per_send = 1e9 / rate;
        Schedule {
            origin,
            offset: (per_send * f64::from(index)) as u128,
            period: ((per_send * f64::from(connections)) as u128).max(1),
            next: 0,
            index,
            connections,
            rate,
        }
    }

    /// The intended time of the next send when the measured window, opened at `window`, runs
    /// the rate `stages` (the warmup before it runs at the starting rate); `None` once the
    /// stages offer no more sends for this connection. Advances the schedule.
    pub fn next_send_staged(
        &mut self,
        window: Option<Instant>,
        stages: &[echobench_core::stages::Stage],
    ) -> Option<Instant> {
        let Some(window) = window else {
            return Some(self.next_send());
        };
        let send = (u128::from(self.index) + self.next * u128::from(self.connections)) as f64;
        let before = self.rate * window.saturating_duration_since(self.origin).as_secs_f64();
        if send < before {
            return Some(self.next_send());
        }
        let into = echobench_core::stages::time_of(stages, send - before)?;
        self.next += 1;
        Some(window + into)
    }

    /// Skips the sends due before `at`: a connection's first open, so that the sends it could
    /// never have made while the load was still opening its connections are not fired in a
    /// burst once it is open (nor charged to the server). Later waits, for a reconnect or an
    /// echo, are the server's and are kept.
    pub fn skip_to(&mut self, at: Instant) {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        if since > self.offset {
            let first = (since - self.offset).div_ceil(self.period);
            self.next = self.next.max(first);
        }
    }

    /// The intended time of the next send; advances the schedule.
    pub fn next_send(&mut self) -> Instant {
        let at = self.offset + self.next * self.period;
        self.next += 1;
        self.origin + Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
    }
}

/// The corrected latency of one round trip in open-loop mode.
///
/// `intended` is when the send was due, `ready` when the connection was free to send (after
/// the previous echo or a reconnect), `sent`/`received` when the message went out and the echo
/// came back. The uncorrected latency is `received - sent`. If the connection was not free when
/// the send was due, the wait `ready - intended` is added: that wait was caused by the server.
/// A send that waited on the client's own timer (due later than `ready`) adds nothing, so
/// timer granularity is not charged to the server.
pub fn corrected(intended: Instant, ready: Instant, sent: Instant, received: Instant) -> Duration {
    received.saturating_duration_since(sent) + ready.saturating_duration_since(intended)
}

/// `--connect-rate`: when a worker's next connection attempt may start. Attempts are spaced
/// `interval` apart (the worker's share of the rate); one that is due late starts at once and
/// the next is spaced from it, so a slow connect never releases a burst to catch up.
#[derive(Debug, Clone)]
pub struct ConnectPacer {
    next: Instant,
    interval: Duration,
}

impl ConnectPacer {
    /// A pacer allowing `rate` attempts per second from `origin` on.
    pub fn new(origin: Instant, rate: f64) -> ConnectPacer {
        ConnectPacer {
            next: origin,
            interval: Duration::from_secs_f64(1.0 / rate),
        }
    }

    /// When the attempt asked for `now` may start; books that slot.
    pub fn slot(&mut self, now: Instant) -> Instant {
        let at = self.next.max(now);
        self.next = at + self.interval;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000/s over 4 connections: each sends every 4 ms, offset by 1 ms per index.
    #[test]
    fn even_interleaved_schedule() {
        let origin = Instant::now();
        let ms = |n: u64| origin + Duration::from_millis(n);
        let mut first = Schedule::new(origin, 1000.0, 4, 0);
        let mut third = Schedule::new(origin, 1000.0, 4, 2);
        assert_eq!([0; 3].map(|_| first.next_send()), [ms(0), ms(4), ms(8)]);
        assert_eq!([0; 3].map(|_| third.next_send()), [ms(2), ms(6), ms(10)]);
    }

    /// Staged: 1000/s until the window opens at 10 ms, then a hold at 100/s for 1 s: connection
    /// 1 of 2 sends at 1, 3, ... 9 ms, then every 20 ms from the window on (its sends 11, 13,
    /// ... of the profile are the window's sends 1, 3, ...), and no more after the stages.
    #[test]
    fn staged_schedule() {
        use echobench_core::stages::Stage;
        let origin = Instant::now();
        let us = |n: u64| origin + Duration::from_micros(n);
        let stages = [Stage {
            duration: Duration::from_secs(1),
            from: 100.0,
            to: 100.0,
        }];
        let mut s = Schedule::new(origin, 1000.0, 2, 1);
        let before: Vec<Instant> = (0..5)
            .map(|_| s.next_send_staged(None, &stages).unwrap())
            .collect();
        assert_eq!(before, [us(1000), us(3000), us(5000), us(7000), us(9000)]);
        let window = Some(us(10_000));
        assert_eq!(s.next_send_staged(window, &stages), Some(us(20_000)));
        assert_eq!(s.next_send_staged(window, &stages), Some(us(40_000)));
        let mut rest = 0;
        while s.next_send_staged(window, &stages).is_some() {
            rest += 1;
        }
        // 100 sends in the stage, every other one this connection's: 50, two already taken.
        assert_eq!(rest, 48);
    }

    /// Opening 5.5 ms late skips the sends due at 2 and 5 ms (and none after); opening before
    /// the first send skips nothing.
    #[test]
    fn skip_to_first_open() {
        let origin = Instant::now();
        let ms = |n: u64| origin + Duration::from_micros(n * 1000);
        let mut late = Schedule::new(origin, 1000.0, 3, 2);
        late.skip_to(origin + Duration::from_micros(5500));
        assert_eq!([0; 2].map(|_| late.next_send()), [ms(8), ms(11)]);
        let mut early = Schedule::new(origin, 1000.0, 3, 2);
        early.skip_to(ms(1));
        assert_eq!(early.next_send(), ms(2));
        let mut exact = Schedule::new(origin, 1000.0, 3, 2);
        exact.skip_to(ms(5));
        assert_eq!(exact.next_send(), ms(5));
    }

    /// 100 attempts/s: slots 10 ms apart from the origin; a late request starts at once and
    /// pushes the following slots back instead of bunching them.
    #[test]
    fn connect_pacing() {
        let origin = Instant::now();
        let ms = |n: u64| origin + Duration::from_millis(n);
        let mut pacer = ConnectPacer::new(origin, 100.0);
        assert_eq!([0; 3].map(|_| pacer.slot(origin)), [ms(0), ms(10), ms(20)]);
        assert_eq!(pacer.slot(ms(55)), ms(55));
        assert_eq!(pacer.slot(ms(56)), ms(65));
    }

    /// Waiting for the connection is charged; waiting for the timer is not.
    #[test]
    fn correction() {
        let t0 = Instant::now();
        let at = |micros: u64| t0 + Duration::from_micros(micros);
        // Free before it was due (timer woke 700 µs late): only the 50 µs round trip counts.
        assert_eq!(
            corrected(at(1000), at(400), at(1700), at(1750)),
            Duration::from_micros(50)
        );
        // A stall held the connection 200 ms past the due time: that counts too.
        assert_eq!(
            corrected(at(1000), at(201_000), at(201_010), at(201_060)),
            Duration::from_micros(200_050)
        );
    }
}
