//! Per-cell results over trials: the median and spread of throughput, latency percentiles from
//! the merged HDR histograms of all trials (never averaged percentiles), server cost, and the
//! flags that qualify a cell.

use echobench_core::broadcast::{BroadcastCounts, BroadcastSummary};
use echobench_core::latency::{self, Percentiles};
use echobench_core::thresholds;

use crate::matrix::Cell;
use crate::stats::{self, Spread};
use crate::trial::{Status, TrialResult};

/// A cell is noisy when its throughput varies by more than this (CV, percent) across trials.
pub const NOISY_CV_PERCENT: f64 = 5.0;

/// One cell's summary.
#[derive(Debug, Clone)]
pub struct CellSummary {
    /// The cell.
    pub cell: Cell,
    /// Which attempt these trials come from (the latest).
    pub attempt: u32,
    /// Trials that ran to the end.
    pub trials_ok: usize,
    /// Trials that failed.
    pub trials_failed: usize,
    /// Trials run again because they could not be trusted (not counted in any figure).
    pub trials_redone: usize,
    /// Why trials failed: distinct reasons, each with the details that follow its first line
    /// (such as the server's stderr tail).
    pub failures: Vec<String>,
    /// Round trips per second over the ok trials.
    pub throughput: Option<Spread>,
    /// Round-trip latency from the merged histograms.
    pub latency: Option<Percentiles>,
    /// Corrected latency (open loop) from the merged histograms.
    pub corrected: Option<Percentiles>,
    /// Server CPU µs per round trip.
    pub server_cpu_us_per_round_trip: Option<Spread>,
    /// Server CPU as a fraction of one CPU.
    pub server_cpu_utilization: Option<Spread>,
    /// Peak RSS, bytes.
    pub rss_peak: Option<Spread>,
    /// RSS added per connection, bytes.
    pub rss_per_connection: Option<Spread>,
    /// Errors over all ok trials.
    pub errors: u64,
    /// Open loop: sends held back by an unanswered echo, as a share of the round trips of all
    /// ok trials (percent).
    pub late_sends_percent: Option<f64>,
    /// Highest CPU steal of any trial, percent.
    pub max_steal_percent: Option<f64>,
    /// The figure a cell is judged by varied by more than [`NOISY_CV_PERCENT`] (CV) across
    /// trials — throughput in closed loop, server CPU per round trip at a fixed rate (where
    /// throughput is the rate) — or a trial saw steal above 5%.
    pub noisy: bool,
    /// Some trial's client was saturated.
    pub client_saturated: bool,
    /// A broadcast cell's deliveries (its `latency` is the delivery latency).
    pub broadcast: Option<BroadcastCell>,
}

/// A broadcast cell over its ok trials: counts summed, rates as medians.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastCell {
    /// The trials' counts, added.
    pub counts: BroadcastCounts,
    /// Trials whose drain ran out of time.
    pub undrained: usize,
    /// Deliveries per second that arrived in the window.
    pub deliveries_per_s: Option<Spread>,
    /// Per trial, the p99 of the time until a message's last subscriber had it, ns.
    pub slowest_p99_ns: Option<Spread>,
}

fn broadcast(reports: &[&echobench_core::Report]) -> Option<BroadcastCell> {
    let all: Vec<&BroadcastSummary> = reports
        .iter()
        .filter_map(|r| r.broadcast.as_ref())
        .collect();
    if all.is_empty() {
        return None;
    }
    Some(BroadcastCell {
        counts: all.iter().map(|b| b.counts).sum(),
        undrained: all.iter().filter(|b| !b.drained).count(),
        deliveries_per_s: stats::spread(
            &all.iter().map(|b| b.deliveries_per_s).collect::<Vec<_>>(),
        ),
        slowest_p99_ns: stats::spread(
            &all.iter()
                .filter(|b| b.slowest.count > 0)
                .map(|b| b.slowest.p99 as f64)
                .collect::<Vec<_>>(),
        ),
    })
}

/// Summarises every cell, in the order cells first appear, from its latest attempt.
pub fn summarise(results: &[TrialResult]) -> Vec<CellSummary> {
    let mut order: Vec<&Cell> = Vec::new();
    for result in results {
        if !order.contains(&&result.cell) {
            order.push(&result.cell);
        }
    }
    order
        .into_iter()
        .map(|cell| {
            let attempt = results
                .iter()
                .filter(|r| &r.cell == cell)
                .map(|r| r.attempt)
                .max()
                .unwrap_or(0);
            let trials: Vec<&TrialResult> = results
                .iter()
                .filter(|r| &r.cell == cell && r.attempt == attempt)
                .collect();
            summarise_cell(cell, attempt, &trials)
        })
        .collect()
}

fn summarise_cell(cell: &Cell, attempt: u32, trials: &[&TrialResult]) -> CellSummary {
    let ok: Vec<&TrialResult> = trials
        .iter()
        .copied()
        .filter(|t| t.ok_report().is_some())
        .collect();
    let values = |f: &dyn Fn(&TrialResult) -> Option<f64>| -> Option<Spread> {
        stats::spread(&ok.iter().filter_map(|t| f(t)).collect::<Vec<f64>>())
    };
    let throughput = values(&|t| t.round_trips_per_s());
    let mut merged = None;
    let mut merged_corrected = None;
    for trial in &ok {
        let Some(report) = trial.report.as_deref() else {
            continue;
        };
        if let Ok(h) = report.histograms.round_trip() {
            merge(&mut merged, h);
        }
        if let Some(Ok(h)) = report.histograms.corrected() {
            merge(&mut merged_corrected, h);
        }
    }
    let max_steal_percent = ok.iter().filter_map(|t| t.steal_percent()).reduce(f64::max);
    let server_cpu_us_per_round_trip = values(&|t| t.server_cpu_us_per_round_trip());
    let judged = match cell.rate {
        None => throughput,
        Some(_) => server_cpu_us_per_round_trip,
    };
    let noisy = judged
        .and_then(|s| s.cv_percent)
        .is_some_and(|cv| cv > NOISY_CV_PERCENT)
        || max_steal_percent.is_some_and(|s| s > thresholds::HIGH_STEAL_PERCENT);
    let reports: Vec<&echobench_core::Report> =
        ok.iter().filter_map(|t| t.report.as_deref()).collect();
    let late: Option<u64> = reports.iter().map(|r| r.summary.late_sends).sum();
    let round_trips: u64 = reports.iter().map(|r| r.summary.round_trips).sum();
    let late_sends_percent = late
        .filter(|_| round_trips > 0)
        .map(|l| 100.0 * l as f64 / round_trips as f64);
    let mut failures: Vec<String> = Vec::new();
    for trial in trials.iter().filter(|t| t.status == Status::Failed) {
        let first = trial.reason.lines().next().unwrap_or("");
        if !failures.iter().any(|f| f.lines().next() == Some(first)) {
            failures.push(trial.reason.clone());
        }
    }
    CellSummary {
        cell: cell.clone(),
        attempt,
        trials_ok: ok.len(),
        trials_failed: trials.iter().filter(|t| t.status == Status::Failed).count(),
        trials_redone: trials.iter().filter(|t| !t.redone.is_empty()).count(),
        failures,
        throughput,
        latency: merged.as_ref().map(Percentiles::of),
        corrected: merged_corrected.as_ref().map(Percentiles::of),
        server_cpu_us_per_round_trip,
        server_cpu_utilization: values(&|t| t.server_cpu_utilization()),
        rss_peak: values(&|t| t.server.and_then(|s| s.rss_peak).map(|b| b as f64)),
        rss_per_connection: values(&|t| t.rss_per_connection()),
        errors: ok
            .iter()
            .filter_map(|t| t.report.as_deref())
            .map(|r| r.summary.errors)
            .sum(),
        late_sends_percent,
        max_steal_percent,
        noisy,
        client_saturated: ok
            .iter()
            .filter_map(|t| t.report.as_deref())
            .any(|r| r.flags.client_saturated),
        broadcast: broadcast(&reports),
    }
}

fn merge(into: &mut Option<hdrhistogram::Histogram<u64>>, from: hdrhistogram::Histogram<u64>) {
    match into {
        None => *into = Some(from),
        Some(h) => {
            // Both decode from our own encodings with identical bounds; fall back to a fresh
            // histogram with the same bounds if a foreign report had others.
            if h.add(&from).is_err() {
                let mut wide = latency::histogram();
                for v in h.iter_recorded().chain(from.iter_recorded()) {
                    wide.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                }
                *h = wide;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    use echobench_core::error::ErrorKind;
    use echobench_core::sample::ReportBuilder;
    use echobench_core::{Protocol, Report};

    use crate::trial::TrialResult;

    fn cell() -> Cell {
        Cell {
            server_index: 0,
            server: "s".into(),
            protocol: Protocol::Tcp,
            connections: 2,
            size: 32,
            roundtrips: 0,
            rate: None,
            of_capacity: None,
            tls_resume: false,
            publishers: None,
            timing: Default::default(),
        }
    }

    /// A real report of a one-second run: `rps` round trips, the ones listed taking `micros`
    /// each, two connections in flight at the end, one error and 1% steal.
    fn report(rps: f64, micros: &[u64]) -> Report {
        let nanos: Vec<u64> = micros.iter().map(|m| m * 1000).collect();
        ReportBuilder::new(Protocol::Tcp)
            .round_trips(&nanos)
            .uncounted_round_trips(rps as u64 - nanos.len() as u64)
            .connections(2, 2)
            .errors(ErrorKind::RoundTripTimeout, 1)
            .cpu(Duration::from_millis(500), Some(1.0))
            .build()
    }

    fn ok_trial(trial: u32, attempt: u32, rps: f64, micros: &[u64]) -> TrialResult {
        TrialResult {
            report: Some(Box::new(report(rps, micros))),
            status: Status::Ok,
            reason: String::new(),
            ..TrialResult::started(&cell(), trial, attempt, SystemTime::now())
        }
    }

    /// Medians and CV come from the ok trials; percentiles from the merged histogram (the p50
    /// of the merge, not the mean of the trials' p50s); failures are listed; the latest
    /// attempt wins.
    #[test]
    fn summarises_trials() {
        let results = vec![
            ok_trial(1, 0, 100.0, &[10, 10, 10]),
            ok_trial(2, 0, 120.0, &[10, 1000, 1000]),
            ok_trial(3, 0, 110.0, &[10, 10, 10]),
            TrialResult::failed(
                &cell(),
                4,
                0,
                SystemTime::now(),
                "server exited (1)\nstderr...".into(),
            ),
        ];
        let summary = &summarise(&results)[0];
        assert_eq!((summary.trials_ok, summary.trials_failed), (3, 1));
        assert_eq!(summary.failures, ["server exited (1)\nstderr..."]);
        let t = summary.throughput.unwrap();
        assert_eq!((t.median, t.min, t.max), (110.0, 100.0, 120.0));
        // CV = 10 / 110 = 9.09% > 5%: noisy.
        assert!(summary.noisy);
        let latency = summary.latency.unwrap();
        assert_eq!(latency.count, 9);
        // 7 of 9 samples are 10 µs: the merged p50 is 10 µs (within HDR precision).
        assert!((10_000..=10_010).contains(&latency.p50), "{}", latency.p50);
        assert!(latency.max >= 1_000_000);
        assert_eq!(summary.errors, 3);
        assert_eq!(summary.max_steal_percent, Some(1.0));

        let mut retried = results;
        retried.push(ok_trial(1, 1, 200.0, &[5]));
        let summary = &summarise(&retried)[0];
        assert_eq!((summary.attempt, summary.trials_ok), (1, 1));
        assert_eq!(summary.throughput.unwrap().median, 200.0);
        assert!(!summary.noisy, "one trial has no CV");
    }

    /// What makes a trial untrusted: steal above 5% always; a saturated client only at a fixed
    /// rate (in closed loop it is the S flag). A trial marked redone counts nowhere but in
    /// `trials_redone`.
    #[test]
    fn untrusted_trials_are_redone_not_counted() {
        let trial = |rate: Option<f64>, cpu_ms: u64, steal: f64| TrialResult {
            report: Some(Box::new(
                ReportBuilder::new(Protocol::Tcp)
                    .round_trips(&[10_000; 100])
                    .cpu(Duration::from_millis(cpu_ms), Some(steal))
                    .build(),
            )),
            status: Status::Ok,
            ..TrialResult::started(&Cell { rate, ..cell() }, 1, 0, SystemTime::now())
        };
        let cases = [
            (None, 500, 1.0, None),
            (None, 500, 9.0, Some("CPU steal 9.0%")),
            (None, 990, 1.0, None),
            (
                Some(100.0),
                990,
                1.0,
                Some("client saturated (99% of its CPU)"),
            ),
            (Some(100.0), 500, 1.0, None),
        ];
        for (rate, cpu, steal, expected) in cases {
            assert_eq!(
                trial(rate, cpu, steal).untrusted().as_deref(),
                expected,
                "rate {rate:?}, cpu {cpu} ms, steal {steal}%"
            );
        }
        let mut redone = ok_trial(1, 0, 999.0, &[10]);
        redone.redone = "CPU steal 9.0%".to_owned();
        let results = vec![redone, ok_trial(1, 0, 100.0, &[10])];
        let summary = &summarise(&results)[0];
        assert_eq!((summary.trials_ok, summary.trials_redone), (1, 1));
        assert_eq!(summary.throughput.unwrap().median, 100.0);
    }
}
