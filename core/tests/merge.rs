//! `Measurement::merge` is exact: however the samples of a run are split over workers, merging
//! the workers' measurements (directly, or through their JSON reports) gives the same counts
//! and the same percentiles as one measurement that recorded every sample itself.

use std::time::{Duration, SystemTime};

use echobench_core::Protocol;
use echobench_core::error::ErrorKind;
use echobench_core::latency::{self, Percentiles};
use echobench_core::measurement::{Measurement, Second};
use echobench_core::report::Report;
use echobench_core::sample::ReportBuilder;
use proptest::prelude::*;

/// One recorded event: a round trip of `nanos` in second `second`, or an error.
#[derive(Debug, Clone)]
enum Event {
    RoundTrip { nanos: u64, second: u32 },
    Error(ErrorKind),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (1u64..10_000_000_000, 0u32..5).prop_map(|(nanos, second)| Event::RoundTrip { nanos, second }),
        1 => prop::sample::select(ErrorKind::ALL.to_vec()).prop_map(Event::Error),
    ]
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn record(m: &mut Measurement, event: &Event) {
    match event {
        Event::RoundTrip { nanos, second } => {
            m.counts.round_trips += 1;
            m.counts.bytes_sent += 40;
            m.counts.bytes_received += 40;
            latency::record(&mut m.latencies.round_trip, *nanos);
            if let Some(corrected) = &mut m.latencies.corrected {
                latency::record(corrected, nanos + 1_000);
            }
            if !m.timeline.iter().any(|s| s.index == *second) {
                let mut empty = Second::new(*second, m.open_loop());
                empty.duration = Duration::from_secs(1);
                m.add_second(&empty);
            }
            let Some(s) = m.timeline.iter_mut().find(|s| s.index == *second) else {
                return;
            };
            s.round_trips += 1;
            latency::record(&mut s.round_trip, *nanos);
            if let Some(corrected) = &mut s.corrected {
                latency::record(corrected, nanos + 1_000);
            }
        }
        Event::Error(kind) => m.errors.record(*kind, None, kind),
    }
}

fn measure(events: &[Event], open_loop: bool) -> Measurement {
    let mut m = Measurement::new(start(), open_loop);
    m.measured = Duration::from_secs(5);
    for e in events {
        record(&mut m, e);
    }
    m
}

proptest! {
    // Each case builds and merges dozens of 1 ns - 1 h histograms; 32 cases keep the test to
    // seconds in a debug build while still covering splits over one to five workers.
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Split the events over K workers in any way: the merge equals the single measurement.
    #[test]
    fn merged_workers_equal_one_histogram(
        events in prop::collection::vec(event(), 0..300),
        workers in 1usize..6,
        assignment in prop::collection::vec(0usize..6, 400),
        open_loop in any::<bool>(),
    ) {
        let whole = measure(&events, open_loop);
        let mut shares: Vec<Vec<Event>> = vec![Vec::new(); workers];
        for (i, e) in events.iter().enumerate() {
            shares[assignment[i] % workers].push(e.clone());
        }
        let parts: Vec<Measurement> = shares.iter().map(|s| measure(s, open_loop)).collect();

        let mut merged = parts[0].clone();
        for part in &parts[1..] {
            merged.merge(part);
        }
        prop_assert_eq!(merged.counts, whole.counts);
        prop_assert_eq!(merged.error_count(), whole.error_count());
        for kind in ErrorKind::ALL {
            prop_assert_eq!(merged.errors.count(kind), whole.errors.count(kind));
        }
        prop_assert_eq!(&merged.latencies.round_trip, &whole.latencies.round_trip);
        prop_assert_eq!(
            Percentiles::of(&merged.latencies.round_trip),
            Percentiles::of(&whole.latencies.round_trip)
        );
        prop_assert_eq!(&merged.latencies.corrected, &whole.latencies.corrected);
        let seconds = |m: &Measurement| m.timeline.iter()
            .map(|s| (s.index, s.round_trips, Percentiles::of(&s.round_trip)))
            .collect::<Vec<_>>();
        prop_assert_eq!(seconds(&merged), seconds(&whole));

        // The same through each worker's JSON report: what reaches disk merges exactly too.
        let via_reports: Vec<Measurement> = parts
            .iter()
            .map(|part| {
                let mut builder = ReportBuilder::new(Protocol::Tcp);
                if open_loop {
                    builder = builder.rate(1000.0);
                }
                let mut report = builder.build();
                let fresh = Report::derive(
                    echobench_core::report::Context {
                        tool: report.tool.clone(),
                        config: report.config.clone(),
                        target: report.target.clone(),
                    },
                    part,
                );
                report = Report::from_json(&fresh.to_json().unwrap()).unwrap();
                report.measurement().unwrap()
            })
            .collect();
        let mut merged = via_reports[0].clone();
        for part in &via_reports[1..] {
            merged.merge(part);
        }
        prop_assert_eq!(merged.counts, whole.counts);
        prop_assert_eq!(&merged.latencies.round_trip, &whole.latencies.round_trip);
        prop_assert_eq!(seconds(&merged), seconds(&whole));
    }
}
