//! Per-worker measurement state. Each worker thread owns one [`Recorder`] that its virtual
//! clients record into without locks or atomics (they all run on that thread). It fills a
//! [`Measurement`] (the worker's totals) and the current [`Second`]; the worker hands each
//! finished second to the coordinator and, at the end, its measurement, which the coordinator
//! merges exactly with the other workers'.

use std::time::{Duration, SystemTime};

use echobench_core::latency::{self, nanos};
use echobench_core::measurement::{Measurement, Phases, Second};
use echobench_core::thresholds::PACER_LATE;

use crate::error::Failure;
use crate::protocol::Opened;

/// Open loop: how one send kept to its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    /// Latency from the intended send (see [`crate::schedule::corrected`]).
    pub corrected: Duration,
    /// The connection was still busy (waiting for an echo or a reconnect) when the send was due.
    pub held: bool,
    /// How long after it could go (due, or free if later) the message left.
    pub lag: Duration,
}

/// What virtual clients record into.
#[derive(Debug)]
pub struct Recorder {
    open_loop: bool,
    totals: Measurement,
    second: Second,
    /// With `--stages`: the stage in progress (from the window's start) and those done.
    stage: Option<Second>,
    stages: Vec<Second>,
    /// Round trips sent and not yet echoed (or failed).
    in_flight: u64,
}

impl Recorder {
    /// An empty recorder; `open_loop` adds the corrected histograms.
    pub fn new(open_loop: bool) -> Recorder {
        Recorder {
            open_loop,
            totals: Measurement::new(SystemTime::now(), open_loop),
            second: Second::new(0, open_loop),
            stage: None,
            stages: Vec::new(),
            in_flight: 0,
        }
    }

    /// Starts recording stage by stage too (the first stage begins now).
    pub fn begin_stages(&mut self) {
        self.stage = Some(Second::new(0, self.open_loop));
    }

    /// Closes the stage in progress as stage `index` lasting `duration`; `next` starts the
    /// following one.
    pub fn end_stage(&mut self, index: u32, duration: Duration, next: bool) {
        if let Some(mut stage) = self.stage.take() {
            stage.index = index;
            stage.duration = duration;
            self.stages.push(stage);
        }
        if next {
            self.stage = Some(Second::new(index + 1, self.open_loop));
        }
    }

    /// The stages closed so far.
    pub fn stages(&self) -> &[Second] {
        &self.stages
    }

    /// Forgets everything recorded so far (the end of the warmup); the measured window starts
    /// now. Round trips in flight stay in flight.
    pub fn reset(&mut self) {
        self.totals = Measurement::new(SystemTime::now(), self.open_loop);
        self.second = Second::new(0, self.open_loop);
        self.stage = None;
        self.stages.clear();
    }

    /// A connection was established after `took`, in the phases of `opened`. Phases are
    /// kept apart only when there is more than one (TLS, or a WebSocket upgrade).
    pub fn connected(&mut self, took: Duration, opened: &Opened) {
        let totals = &mut self.totals;
        totals.counts.connections_opened += 1;
        latency::record(&mut totals.latencies.connect, nanos(took));
        if opened.tls.is_some() {
            totals.counts.tls_handshakes += 1;
            totals.counts.tls_resumed += u64::from(opened.resumed);
        }
        if opened.tls.is_some() || opened.upgrade.is_some() {
            totals
                .latencies
                .phases
                .get_or_insert_with(Phases::default)
                .record(opened.tcp, opened.tls, opened.upgrade);
        }
    }

    /// A connection ended.
    pub fn closed(&mut self) {
        self.totals.counts.connections_closed += 1;
    }

    /// A message is about to be sent.
    pub fn sending(&mut self) {
        self.in_flight += 1;
    }

    /// The round trip that was in flight ended (completed or failed).
    pub fn settled(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A round trip completed: its latency, the bytes moved, and in open loop how its send
    /// kept to the schedule.
    pub fn round_trip(
        &mut self,
        took: Duration,
        sent: usize,
        received: usize,
        paced: Option<Paced>,
    ) {
        let t = &mut self.totals;
        t.counts.round_trips += 1;
        t.counts.bytes_sent += sent as u64;
        t.counts.bytes_received += received as u64;
        latency::record(&mut t.latencies.round_trip, nanos(took));
        self.second.round_trips += 1;
        latency::record(&mut self.second.round_trip, nanos(took));
        if let Some(stage) = &mut self.stage {
            stage.round_trips += 1;
            latency::record(&mut stage.round_trip, nanos(took));
            if let Some(paced) = paced {
                stage.late_sends += u64::from(paced.held);
                if let Some(h) = &mut stage.corrected {
                    latency::record(h, nanos(paced.corrected));
                }
            }
        }
        if let Some(paced) = paced {
            if let Some(h) = &mut t.latencies.corrected {
                latency::record(h, nanos(paced.corrected));
            }
            if let Some(h) = &mut self.second.corrected {
                latency::record(h, nanos(paced.corrected));
            }
            if let Some(h) = &mut t.latencies.send_lag {
                latency::record(h, nanos(paced.lag));
            }
            t.counts.late_sends += u64::from(paced.held);
            self.second.late_sends += u64::from(paced.held);
            t.counts.pacer_late_sends += u64::from(paced.lag > PACER_LATE);
        }
    }

    /// Something failed.
    pub fn failed(&mut self, failure: &Failure) {
        failure.log_into(&mut self.totals.errors);
        self.second.errors += 1;
        if let Some(stage) = &mut self.stage {
            stage.errors += 1;
        }
    }

    /// Round trips in flight right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Hands over the current second as second `index` lasting `duration`, and starts the
    /// next one.
    pub fn take_second(&mut self, index: u32, duration: Duration) -> Second {
        let mut second =
            std::mem::replace(&mut self.second, Second::new(index + 1, self.open_loop));
        second.index = index;
        second.duration = duration;
        second
    }

    /// The totals so far (the window's start, counts, errors and histograms; no timeline,
    /// which went to the coordinator second by second).
    pub fn totals(&self) -> &Measurement {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echobench_core::error::ErrorKind;

    /// Records land in the totals and the current second; reset and take_second clear them.
    #[test]
    fn recording() {
        let mut r = Recorder::new(true);
        r.connected(Duration::from_micros(100), &Opened::default());
        r.sending();
        assert_eq!(r.in_flight(), 1);
        r.settled();
        r.round_trip(
            Duration::from_micros(50),
            60,
            70,
            Some(Paced {
                corrected: Duration::from_micros(80),
                held: true,
                lag: Duration::from_micros(3),
            }),
        );
        r.round_trip(
            Duration::from_micros(50),
            60,
            70,
            Some(Paced {
                corrected: Duration::from_micros(250),
                held: false,
                lag: Duration::from_micros(200),
            }),
        );
        r.failed(&Failure::RoundTripTimeout);
        let second = r.take_second(0, Duration::from_secs(1));
        assert_eq!((second.index, second.round_trips, second.errors), (0, 2, 1));
        assert_eq!(second.duration, Duration::from_secs(1));
        assert_eq!(second.round_trip.len(), 2);
        assert_eq!(second.corrected.as_ref().unwrap().len(), 2);
        let t = r.totals();
        let c = t.counts;
        assert_eq!(
            (c.round_trips, c.bytes_sent, c.bytes_received),
            (2, 120, 140)
        );
        assert_eq!(
            (c.late_sends, c.pacer_late_sends),
            (1, 1),
            "held, then late by 200 µs"
        );
        assert_eq!(t.latencies.send_lag.as_ref().map(|h| h.len()), Some(2));
        assert_eq!((c.connections_opened, t.latencies.connect.len()), (1, 1));
        assert_eq!(t.errors.count(ErrorKind::RoundTripTimeout), 1);
        let next = r.take_second(1, Duration::from_secs(1));
        assert_eq!((next.index, next.round_trips), (1, 0));

        r.sending();
        r.reset();
        assert_eq!(r.totals().counts.round_trips, 0);
        assert_eq!(
            r.in_flight(),
            1,
            "a reset does not forget what is in flight"
        );
    }
}
