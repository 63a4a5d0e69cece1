//! Per-worker measurement state. Each worker thread owns one [`Recorder`] that its virtual
//! clients record into without locks or atomics (they all run on that thread); the coordinator
//! receives a copy of each second's interval and the final totals, and merges them exactly.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::{ErrorLog, Failure};
use crate::latency;

/// Counters and histograms of one worker over the measured window (so far).
#[derive(Debug, Clone)]
pub struct Totals {
    /// Completed round trips.
    pub round_trips: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Connections established.
    pub connections_opened: u64,
    /// Connections that ended.
    pub connections_closed: u64,
    /// Open loop: sends held back past their intended time.
    pub late_sends: u64,
    /// Errors by kind.
    pub errors: ErrorLog,
    /// Round-trip latency (uncorrected).
    pub round_trip: Histogram<u64>,
    /// Connect latency.
    pub connect: Histogram<u64>,
    /// Open loop: corrected latency.
    pub corrected: Option<Histogram<u64>>,
}

impl Totals {
    fn new(open_loop: bool) -> Totals {
        Totals {
            round_trips: 0,
            bytes_sent: 0,
            bytes_received: 0,
            connections_opened: 0,
            connections_closed: 0,
            late_sends: 0,
            errors: ErrorLog::default(),
            round_trip: latency::histogram(),
            connect: latency::histogram(),
            corrected: open_loop.then(latency::histogram),
        }
    }

    /// Adds another worker's totals (histograms merge exactly).
    pub fn merge(&mut self, other: &Totals) {
        self.round_trips += other.round_trips;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.connections_opened += other.connections_opened;
        self.connections_closed += other.connections_closed;
        self.late_sends += other.late_sends;
        self.errors.merge(&other.errors);
        add(&mut self.round_trip, &other.round_trip);
        add(&mut self.connect, &other.connect);
        if let (Some(ours), Some(theirs)) = (&mut self.corrected, &other.corrected) {
            add(ours, theirs);
        }
    }
}

/// Merges `from` into `into`. Both come from [`latency::histogram`], so they share bounds and
/// the addition cannot fail; a failure would mean a bug, and is logged rather than panicking.
pub(crate) fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(err) = into.add(from) {
        tracing::error!(?err, "histogram merge failed");
    }
}

/// One second's worth of a worker's samples, sent to the coordinator.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Round trips completed in the interval.
    pub round_trips: u64,
    /// Errors in the interval.
    pub errors: u64,
    /// Round-trip latency in the interval.
    pub round_trip: Histogram<u64>,
    /// Open loop: corrected latency in the interval.
    pub corrected: Option<Histogram<u64>>,
}

impl Interval {
    fn new(open_loop: bool) -> Interval {
        Interval {
            round_trips: 0,
            errors: 0,
            round_trip: latency::histogram(),
            corrected: open_loop.then(latency::histogram),
        }
    }
}

/// What virtual clients record into.
#[derive(Debug)]
pub struct Recorder {
    open_loop: bool,
    totals: Totals,
    interval: Interval,
    /// Round trips sent and not yet echoed (or failed).
    in_flight: u64,
}

impl Recorder {
    /// An empty recorder; `open_loop` adds the corrected histograms.
    pub fn new(open_loop: bool) -> Recorder {
        Recorder {
            open_loop,
            totals: Totals::new(open_loop),
            interval: Interval::new(open_loop),
            in_flight: 0,
        }
    }

    /// Forgets everything recorded so far (the end of the warmup). Round trips in flight stay
    /// in flight.
    pub fn reset(&mut self) {
        self.totals = Totals::new(self.open_loop);
        self.interval = Interval::new(self.open_loop);
    }

    /// A connection was established after `took`.
    pub fn connected(&mut self, took: Duration) {
        self.totals.connections_opened += 1;
        latency::record(&mut self.totals.connect, nanos(took));
    }

    /// A connection ended.
    pub fn closed(&mut self) {
        self.totals.connections_closed += 1;
    }

    /// A message is about to be sent.
    pub fn sending(&mut self) {
        self.in_flight += 1;
    }

    /// The round trip that was in flight ended (completed or failed).
    pub fn settled(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A round trip completed: its latency, the bytes moved, and in open loop its corrected
    /// latency and whether its send was held back.
    pub fn round_trip(
        &mut self,
        took: Duration,
        sent: usize,
        received: usize,
        corrected: Option<(Duration, bool)>,
    ) {
        let t = &mut self.totals;
        t.round_trips += 1;
        t.bytes_sent += sent as u64;
        t.bytes_received += received as u64;
        latency::record(&mut t.round_trip, nanos(took));
        self.interval.round_trips += 1;
        latency::record(&mut self.interval.round_trip, nanos(took));
        if let Some((corrected, late)) = corrected {
            if let Some(h) = &mut t.corrected {
                latency::record(h, nanos(corrected));
            }
            if let Some(h) = &mut self.interval.corrected {
                latency::record(h, nanos(corrected));
            }
            t.late_sends += u64::from(late);
        }
    }

    /// Something failed.
    pub fn failed(&mut self, failure: &Failure) {
        self.totals.errors.record(failure);
        self.interval.errors += 1;
    }

    /// Round trips in flight right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Hands over the interval so far and starts a new one.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::replace(&mut self.interval, Interval::new(self.open_loop))
    }

    /// The totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records land in totals and the current interval; reset and take_interval clear them.
    #[test]
    fn recording() {
        let mut r = Recorder::new(true);
        r.connected(Duration::from_micros(100));
        r.sending();
        assert_eq!(r.in_flight(), 1);
        r.settled();
        r.round_trip(
            Duration::from_micros(50),
            60,
            70,
            Some((Duration::from_micros(80), true)),
        );
        r.failed(&Failure::RoundTripTimeout);
        let interval = r.take_interval();
        assert_eq!((interval.round_trips, interval.errors), (1, 1));
        assert_eq!(interval.round_trip.len(), 1);
        assert_eq!(interval.corrected.as_ref().unwrap().len(), 1);
        let t = r.totals();
        assert_eq!(
            (t.round_trips, t.bytes_sent, t.bytes_received, t.late_sends),
            (1, 60, 70, 1)
        );
        assert_eq!((t.connections_opened, t.connect.len()), (1, 1));
        assert_eq!(r.take_interval().round_trips, 0);

        r.sending();
        r.reset();
        assert_eq!(r.totals().round_trips, 0);
        assert_eq!(
            r.in_flight(),
            1,
            "a reset does not forget what is in flight"
        );
    }

    /// Merging totals adds every counter and histogram.
    #[test]
    fn merging() {
        let mut a = Recorder::new(false);
        let mut b = Recorder::new(false);
        a.round_trip(Duration::from_micros(10), 1, 2, None);
        b.round_trip(Duration::from_micros(30), 3, 4, None);
        b.closed();
        let mut merged = a.totals().clone();
        merged.merge(b.totals());
        assert_eq!(
            (merged.round_trips, merged.bytes_sent, merged.bytes_received),
            (2, 4, 6)
        );
        assert_eq!(merged.connections_closed, 1);
        assert_eq!(merged.round_trip.len(), 2);
        assert!(merged.corrected.is_none());
    }
}
