//! The raw measurement: what a load generator (one worker thread, one process, one host)
//! counted and recorded over its measured window — counts, errors by kind, CPU, and HDR
//! histograms, in total and per second. It holds no percentile: percentiles cannot be merged,
//! histograms can. [`Measurement::merge`] combines the measurements of any number of workers
//! exactly, and every figure a report shows is derived from the merged result in one place
//! ([`crate::report::Report::derive`]).

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::ErrorLog;
use crate::latency::{self, CodecError, Percentiles};

/// Counters over a measured window. Every field adds when measurements merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Completed round trips: echo received and byte-identical.
    pub round_trips: u64,
    /// Bytes written, protocol framing included.
    pub bytes_sent: u64,
    /// Bytes read, protocol framing included.
    pub bytes_received: u64,
    /// Connections established.
    pub connections_opened: u64,
    /// Connections that ended.
    pub connections_closed: u64,
    /// Open loop: sends that left after their intended time because the connection was still
    /// waiting for an echo (or a reconnect): the server's doing.
    pub late_sends: u64,
    /// Open loop: sends that left more than [`crate::thresholds::PACER_LATE`] after their
    /// intended time although the connection was free: the load generator's doing.
    #[serde(default)]
    pub pacer_late_sends: u64,
    /// Round trips sent but not answered when the window closed.
    pub in_flight_at_deadline: u64,
    /// TLS: handshakes completed.
    #[serde(default)]
    pub tls_handshakes: u64,
    /// TLS: of those, how many resumed an earlier session.
    #[serde(default)]
    pub tls_resumed: u64,
}

impl Counts {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Counts) {
        self.round_trips += other.round_trips;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.connections_opened += other.connections_opened;
        self.connections_closed += other.connections_closed;
        self.late_sends += other.late_sends;
        self.pacer_late_sends += other.pacer_late_sends;
        self.in_flight_at_deadline += other.in_flight_at_deadline;
        self.tls_handshakes += other.tls_handshakes;
        self.tls_resumed += other.tls_resumed;
    }
}

/// The latency histograms of a window (nanoseconds, see [`latency`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies {
    /// Round-trip time from the actual send (uncorrected).
    pub round_trip: Histogram<u64>,
    /// Connection establishment.
    pub connect: Histogram<u64>,
    /// Connect's phases, when it has more than one (TLS, or a WebSocket upgrade).
    pub phases: Option<Phases>,
    /// Open loop only: round-trip time from the intended send.
    pub corrected: Option<Histogram<u64>>,
    /// Open loop only: how long after it could go (its intended time, or the echo that held
    /// it back) each message was sent — the pacer's own precision.
    pub send_lag: Option<Histogram<u64>>,
}

impl Latencies {
    /// Empty histograms; `open_loop` adds the corrected one.
    pub fn new(open_loop: bool) -> Latencies {
        Latencies {
            round_trip: latency::histogram(),
            connect: latency::histogram(),
            phases: None,
            corrected: open_loop.then(latency::histogram),
            send_lag: open_loop.then(latency::histogram),
        }
    }

    /// Adds `other`'s samples (exactly: histograms of the same bounds add bucket by bucket).
    pub fn add(&mut self, other: &Latencies) {
        latency::add(&mut self.round_trip, &other.round_trip);
        latency::add(&mut self.connect, &other.connect);
        if let Some(theirs) = &other.phases {
            self.phases.get_or_insert_with(Phases::default).add(theirs);
        }
        add_optional(&mut self.corrected, other.corrected.as_ref());
        add_optional(&mut self.send_lag, other.send_lag.as_ref());
    }
}

/// Connection establishment, phase by phase (nanoseconds): what `connect` adds up.
#[derive(Debug, Clone, PartialEq)]
pub struct Phases {
    /// TCP connect.
    pub tcp: Histogram<u64>,
    /// TLS handshake, over TLS.
    pub tls: Option<Histogram<u64>>,
    /// WebSocket upgrade (request to `101`), for WebSocket.
    pub upgrade: Option<Histogram<u64>>,
}

impl Default for Phases {
    fn default() -> Phases {
        Phases {
            tcp: latency::histogram(),
            tls: None,
            upgrade: None,
        }
    }
}

impl Phases {
    /// Adds `other`'s samples.
    pub fn add(&mut self, other: &Phases) {
        latency::add(&mut self.tcp, &other.tcp);
        add_optional(&mut self.tls, other.tls.as_ref());
        add_optional(&mut self.upgrade, other.upgrade.as_ref());
    }

    /// Records one connect's phases.
    pub fn record(&mut self, tcp: Duration, tls: Option<Duration>, upgrade: Option<Duration>) {
        latency::record(&mut self.tcp, latency::nanos(tcp));
        if let Some(tls) = tls {
            latency::record(
                self.tls.get_or_insert_with(latency::histogram),
                latency::nanos(tls),
            );
        }
        if let Some(upgrade) = upgrade {
            latency::record(
                self.upgrade.get_or_insert_with(latency::histogram),
                latency::nanos(upgrade),
            );
        }
    }
}

fn add_optional(into: &mut Option<Histogram<u64>>, from: Option<&Histogram<u64>>) {
    match (into.as_mut(), from) {
        (Some(ours), Some(theirs)) => latency::add(ours, theirs),
        (None, Some(theirs)) => *into = Some(theirs.clone()),
        (_, None) => {}
    }
}

/// One second of the timeline (the last one may be shorter), raw: it merges like the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SecondRecord", into = "SecondRecord")]
pub struct Second {
    /// Index from the start of the measured window (0-based).
    pub index: u32,
    /// Length of this second (shorter for a final partial one).
    pub duration: Duration,
    /// Round trips completed in it.
    pub round_trips: u64,
    /// Errors in it.
    pub errors: u64,
    /// Open loop: sends in it held back by an unanswered echo (see `Counts::late_sends`).
    pub late_sends: u64,
    /// Round-trip latency in it.
    pub round_trip: Histogram<u64>,
    /// Open loop only: corrected latency in it.
    pub corrected: Option<Histogram<u64>>,
    /// Open loop: the sends its schedule offered in it (set from the load profile, so the
    /// timeline shows offered beside achieved); adds when measurements merge.
    pub offered: Option<f64>,
}

impl Second {
    /// An empty second `index`; `open_loop` adds the corrected histogram.
    pub fn new(index: u32, open_loop: bool) -> Second {
        Second {
            index,
            duration: Duration::ZERO,
            round_trips: 0,
            errors: 0,
            late_sends: 0,
            round_trip: latency::histogram(),
            corrected: open_loop.then(latency::histogram),
            offered: None,
        }
    }

    /// Adds another worker's record of the same second.
    pub fn add(&mut self, other: &Second) {
        self.duration = self.duration.max(other.duration);
        self.round_trips += other.round_trips;
        self.errors += other.errors;
        self.late_sends += other.late_sends;
        latency::add(&mut self.round_trip, &other.round_trip);
        add_optional(&mut self.corrected, other.corrected.as_ref());
        self.offered = match (self.offered, other.offered) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// How a [`Second`] reaches disk: its counts, the percentiles people read, and the histograms
/// that make it mergeable again. The percentiles are derived on writing and ignored on reading.
#[derive(Serialize, Deserialize)]
struct SecondRecord {
    second: u32,
    duration_s: f64,
    round_trips: u64,
    errors: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    late_sends: u64,
    p50_ns: u64,
    p99_ns: u64,
    corrected_p99_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offered: Option<f64>,
    round_trip_histogram: String,
    corrected_histogram: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<Second> for SecondRecord {
    fn from(s: Second) -> SecondRecord {
        let p = Percentiles::of(&s.round_trip);
        SecondRecord {
            second: s.index,
            duration_s: s.duration.as_secs_f64(),
            round_trips: s.round_trips,
            errors: s.errors,
            late_sends: s.late_sends,
            p50_ns: p.p50,
            p99_ns: p.p99,
            corrected_p99_ns: s.corrected.as_ref().map(|h| Percentiles::of(h).p99),
            offered: s.offered,
            round_trip_histogram: latency::encode(&s.round_trip).unwrap_or_default(),
            corrected_histogram: s
                .corrected
                .as_ref()
                .map(|h| latency::encode(h).unwrap_or_default()),
        }
    }
}

impl TryFrom<SecondRecord> for Second {
    type Error = CodecError;

    fn try_from(r: SecondRecord) -> Result<Second, CodecError> {
        Ok(Second {
            index: r.second,
            duration: Duration::try_from_secs_f64(r.duration_s).unwrap_or_default(),
            round_trips: r.round_trips,
            errors: r.errors,
            late_sends: r.late_sends,
            round_trip: latency::decode(&r.round_trip_histogram)?,
            corrected: r
                .corrected_histogram
                .as_deref()
                .map(latency::decode)
                .transpose()?,
            offered: r.offered,
        })
    }
}

/// The CPU a load generator used and could have used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    /// Worker threads (each an event loop).
    pub threads: usize,
    /// CPUs the generator's processes were allowed to run on (sorted, no repeats).
    pub allowed_cpus: Vec<usize>,
    /// CPUs it could use at most: min(threads, allowed CPUs), added over processes.
    pub capacity_cpus: f64,
    /// CPU time (user + system) of its processes over the window.
    pub process: Duration,
    /// The busiest single worker thread's CPU time over the window, its idle spin excluded.
    pub busiest_thread: Duration,
    /// Open loop: CPU time the pacer spent busy-waiting for a send due within microseconds
    /// while nothing else needed the thread (included in `process`; see the client's pacer).
    pub idle_spin: Duration,
}

/// Everything a load generator measured over its window, mergeable.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Wall-clock start of the measured window.
    pub started_at: SystemTime,
    /// Length of the measured window.
    pub measured: Duration,
    /// The window was cut short by an interrupt.
    pub interrupted: bool,
    /// The window was cut short because an objective was breached for `--slo-abort`.
    pub slo_aborted: bool,
    /// Counters.
    pub counts: Counts,
    /// Errors by kind.
    pub errors: ErrorLog,
    /// Histograms over the whole window.
    pub latencies: Latencies,
    /// With `--stages`: each stage's record (its index, its length, everything measured in
    /// it), in order; stages the run did not reach are absent.
    pub stages: Vec<Second>,
    /// The window second by second, in order.
    pub timeline: Vec<Second>,
    /// CPU used.
    pub cpu: CpuUse,
    /// The machine's CPU steal over the window, percent (`None` where it cannot be read).
    pub steal_percent: Option<f64>,
}

impl Measurement {
    /// An empty measurement of a window starting at `started_at`.
    pub fn new(started_at: SystemTime, open_loop: bool) -> Measurement {
        Measurement {
            started_at,
            measured: Duration::ZERO,
            interrupted: false,
            slo_aborted: false,
            counts: Counts::default(),
            errors: ErrorLog::default(),
            latencies: Latencies::new(open_loop),
            timeline: Vec::new(),
            stages: Vec::new(),
            cpu: CpuUse::default(),
            steal_percent: None,
        }
    }

    /// Whether the corrected (open-loop) histograms are kept.
    pub fn open_loop(&self) -> bool {
        self.latencies.corrected.is_some()
    }

    /// Errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.total()
    }

    /// Adds `other` to this measurement, exactly: counts and errors add, histograms add
    /// bucket by bucket (so every percentile of the result is the percentile of the union of
    /// the samples), the window becomes the span of both, and the timelines are aligned on
    /// wall-clock seconds (a worker that started `k` whole seconds later contributes its
    /// second `i` to second `i + k`). CPU time and capacity add, the busiest thread is the
    /// busier of the two, and steal is the higher of the two readings (the noisier machine
    /// decides whether the result is trusted).
    pub fn merge(&mut self, other: &Measurement) {
        let end = (self.started_at + self.measured).max(other.started_at + other.measured);
        let shift = |later: SystemTime, earlier: SystemTime| -> u32 {
            let offset = later.duration_since(earlier).unwrap_or_default();
            u32::try_from((offset.as_millis() + 500) / 1000).unwrap_or(u32::MAX)
        };
        let (ours, theirs) = if other.started_at < self.started_at {
            (shift(self.started_at, other.started_at), 0)
        } else {
            (0, shift(other.started_at, self.started_at))
        };
        if ours > 0 {
            for second in &mut self.timeline {
                second.index = second.index.saturating_add(ours);
            }
        }
        self.started_at = self.started_at.min(other.started_at);
        self.measured = end.duration_since(self.started_at).unwrap_or_default();
        self.interrupted |= other.interrupted;
        self.slo_aborted |= other.slo_aborted;
        self.counts.add(&other.counts);
        self.errors.merge(&other.errors);
        self.latencies.add(&other.latencies);
        for second in &other.timeline {
            let mut second = second.clone();
            second.index = second.index.saturating_add(theirs);
            self.add_second(&second);
        }
        for stage in &other.stages {
            match self.stages.binary_search_by_key(&stage.index, |s| s.index) {
                Ok(at) => self.stages[at].add(stage),
                Err(at) => self.stages.insert(at, stage.clone()),
            }
        }
        let cpu = &mut self.cpu;
        cpu.threads += other.cpu.threads;
        cpu.allowed_cpus.extend(&other.cpu.allowed_cpus);
        cpu.allowed_cpus.sort_unstable();
        cpu.allowed_cpus.dedup();
        cpu.capacity_cpus += other.cpu.capacity_cpus;
        cpu.process += other.cpu.process;
        cpu.busiest_thread = cpu.busiest_thread.max(other.cpu.busiest_thread);
        cpu.idle_spin += other.cpu.idle_spin;
        self.steal_percent = match (self.steal_percent, other.steal_percent) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Adds one second to the timeline, merging it with the second of the same index if the
    /// timeline has one, and keeping the timeline in order.
    pub fn add_second(&mut self, second: &Second) {
        match self
            .timeline
            .binary_search_by_key(&second.index, |s| s.index)
        {
            Ok(at) => self.timeline[at].add(second),
            Err(at) => self.timeline.insert(at, second.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn worker(start: u64, samples: &[u64], open_loop: bool) -> Measurement {
        let mut m = Measurement::new(at(start), open_loop);
        m.measured = Duration::from_secs(2);
        for (i, &value) in samples.iter().enumerate() {
            m.counts.round_trips += 1;
            latency::record(&mut m.latencies.round_trip, value);
            let index = u32::try_from(i % 2).unwrap();
            let mut second = Second::new(index, open_loop);
            second.duration = Duration::from_secs(1);
            second.round_trips = 1;
            latency::record(&mut second.round_trip, value);
            m.add_second(&second);
        }
        m
    }

    /// Two workers of the same window: counts add, histograms add, seconds merge by index.
    #[test]
    fn merge_of_one_window() {
        let mut a = worker(0, &[100, 200, 300], false);
        a.errors
            .record(ErrorKind::RoundTripTimeout, None, "no echo");
        a.cpu = CpuUse {
            threads: 1,
            allowed_cpus: vec![1],
            capacity_cpus: 1.0,
            process: Duration::from_millis(500),
            busiest_thread: Duration::from_millis(500),
            idle_spin: Duration::from_millis(10),
        };
        let mut b = worker(0, &[400], false);
        b.cpu = CpuUse {
            threads: 1,
            allowed_cpus: vec![1, 2],
            capacity_cpus: 1.0,
            process: Duration::from_millis(700),
            busiest_thread: Duration::from_millis(700),
            idle_spin: Duration::from_millis(20),
        };
        b.steal_percent = Some(2.0);
        a.merge(&b);
        assert_eq!(a.counts.round_trips, 4);
        assert_eq!(a.latencies.round_trip.len(), 4);
        assert_eq!(a.error_count(), 1);
        assert_eq!(a.measured, Duration::from_secs(2));
        let per_second: Vec<(u32, u64)> = a
            .timeline
            .iter()
            .map(|s| (s.index, s.round_trips))
            .collect();
        assert_eq!(per_second, [(0, 3), (1, 1)]);
        assert_eq!(a.cpu.threads, 2);
        assert_eq!(a.cpu.allowed_cpus, [1, 2]);
        assert_eq!(a.cpu.process, Duration::from_millis(1200));
        assert_eq!(a.cpu.busiest_thread, Duration::from_millis(700));
        assert_eq!(a.cpu.idle_spin, Duration::from_millis(30));
        assert_eq!(a.steal_percent, Some(2.0));
    }

    /// A worker that started 3 s later lands 3 seconds later in the timeline, whichever side
    /// of the merge it is on, and the window spans both.
    #[test]
    fn merge_aligns_on_wall_clock_seconds() {
        for later_first in [false, true] {
            let early = worker(0, &[1, 2], true);
            let late = worker(3, &[3, 4], true);
            let (mut m, other) = if later_first {
                (late, early)
            } else {
                (early, late)
            };
            m.merge(&other);
            assert_eq!(m.started_at, at(0));
            assert_eq!(m.measured, Duration::from_secs(5));
            let indexes: Vec<u32> = m.timeline.iter().map(|s| s.index).collect();
            assert_eq!(indexes, [0, 1, 3, 4], "later first: {later_first}");
            assert!(m.open_loop());
        }
    }

    /// A second survives its disk form: histograms exactly, percentiles derived.
    #[test]
    fn second_round_trips_through_json() {
        let mut s = Second::new(7, true);
        s.duration = Duration::from_millis(400);
        s.round_trips = 2;
        latency::record(&mut s.round_trip, 1_000);
        latency::record(&mut s.round_trip, 9_000);
        latency::record(s.corrected.as_mut().unwrap(), 20_000);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["second"], 7);
        assert_eq!(json["round_trips"], 2);
        assert_eq!(json["p50_ns"], 1_000);
        assert!(
            json["round_trip_histogram"]
                .as_str()
                .unwrap()
                .starts_with("HISTF")
        );
        let back: Second = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}
