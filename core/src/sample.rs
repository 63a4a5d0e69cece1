//! Reports made to order, for tests: a [`ReportBuilder`] records the samples and counts a test
//! names into a real [`Measurement`] and derives the report from it with
//! [`Report::derive`], so no test restates the report schema as a JSON literal (and a schema
//! change cannot leave such a literal silently describing the old one).

use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::error::ErrorKind;
use crate::latency;
use crate::measurement::{CpuUse, Measurement, Second};
use crate::protocol::Protocol;
use crate::report::{Context, Report, TargetInfo, Tool};

/// Builds a [`Report`] from a measurement a test describes.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    config: Config,
    protocol: Protocol,
    measurement: Measurement,
}

impl ReportBuilder {
    /// A one-second closed-loop run against `protocol`'s echo URL on 127.0.0.1:1, with one
    /// thread on CPU 1 and nothing recorded yet.
    pub fn new(protocol: Protocol) -> ReportBuilder {
        let url = protocol.echo_url("127.0.0.1:1");
        let mut measurement = Measurement::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
            false,
        );
        measurement.measured = Duration::from_secs(1);
        measurement.cpu = CpuUse {
            threads: 1,
            allowed_cpus: vec![1],
            capacity_cpus: 1.0,
            process: Duration::ZERO,
            busiest_thread: Duration::ZERO,
            idle_spin: Duration::ZERO,
        };
        ReportBuilder {
            config: Config {
                threads: 1,
                ..Config::new(url)
            },
            protocol,
            measurement,
        }
    }

    /// Open loop at `rate` round trips per second (adds the corrected histograms).
    pub fn rate(mut self, rate: f64) -> ReportBuilder {
        self.config.rate = Some(rate);
        if self.measurement.latencies.corrected.is_none() {
            self.measurement.latencies.corrected = Some(latency::histogram());
        }
        self
    }

    /// The measured window's length.
    pub fn measured(mut self, window: Duration) -> ReportBuilder {
        self.measurement.measured = window;
        self
    }

    /// Completed round trips, one per latency given (nanoseconds), all in second 0.
    pub fn round_trips(mut self, nanos: &[u64]) -> ReportBuilder {
        let open_loop = self.measurement.open_loop();
        let mut second = Second::new(0, open_loop);
        second.duration = self.measurement.measured.min(Duration::from_secs(1));
        for &value in nanos {
            self.measurement.counts.round_trips += 1;
            latency::record(&mut self.measurement.latencies.round_trip, value);
            latency::record(&mut second.round_trip, value);
            if let Some(corrected) = &mut self.measurement.latencies.corrected {
                latency::record(corrected, value);
            }
            if let Some(corrected) = &mut second.corrected {
                latency::record(corrected, value);
            }
            second.round_trips += 1;
        }
        self.measurement.add_second(&second);
        self
    }

    /// `count` more round trips counted without latency samples (a throughput-only figure).
    pub fn uncounted_round_trips(mut self, count: u64) -> ReportBuilder {
        self.measurement.counts.round_trips += count;
        self
    }

    /// `count` errors of `kind`.
    pub fn errors(mut self, kind: ErrorKind, count: u64) -> ReportBuilder {
        for _ in 0..count {
            self.measurement.errors.record(kind, None, kind);
        }
        self
    }

    /// Connections opened, and round trips in flight when the window closed.
    pub fn connections(mut self, opened: u64, in_flight: u64) -> ReportBuilder {
        self.measurement.counts.connections_opened = opened;
        self.measurement.counts.in_flight_at_deadline = in_flight;
        self
    }

    /// The client's CPU time over the window (its one thread's too) and the steal seen.
    pub fn cpu(mut self, cpu: Duration, steal_percent: Option<f64>) -> ReportBuilder {
        self.measurement.cpu.process = cpu;
        self.measurement.cpu.busiest_thread = cpu;
        self.measurement.steal_percent = steal_percent;
        self
    }

    /// Changes the embedded config.
    pub fn config(mut self, change: impl FnOnce(&mut Config)) -> ReportBuilder {
        change(&mut self.config);
        self
    }

    /// The measurement so far.
    pub fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    /// The report derived from the measurement.
    pub fn build(self) -> Report {
        let target = TargetInfo {
            url: self.config.url.clone(),
            protocol: self.protocol,
            addr: "127.0.0.1:1".to_owned(),
        };
        Report::derive(
            Context {
                tool: Tool::this(),
                config: self.config,
                target,
            },
            &self.measurement,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the builder records is what the derived report says, and the report survives JSON.
    #[test]
    fn builds_a_consistent_report() {
        let report = ReportBuilder::new(Protocol::Http)
            .measured(Duration::from_secs(2))
            .round_trips(&[1_000, 2_000, 3_000, 4_000])
            .errors(ErrorKind::HttpStatus, 2)
            .cpu(Duration::from_millis(500), Some(1.5))
            .build();
        assert_eq!(report.summary.round_trips, 4);
        assert_eq!(report.summary.round_trips_per_s, 2.0);
        assert_eq!(report.summary.errors, 2);
        assert_eq!(report.latency.round_trip.count, 4);
        assert_eq!(report.client.utilization, 0.25);
        assert_eq!(report.client.cpu_us_per_round_trip, Some(125_000.0));
        assert_eq!(report.target.url, "http://127.0.0.1:1/echo");
        assert_eq!(report.timeline.len(), 1);
        let back = Report::from_json(&report.to_json().unwrap()).unwrap();
        assert_eq!(back, report);
    }
}
