//! The broadcast workload's settings and what its report adds (`--workload broadcast`): N
//! subscribers stay connected to a relay, P of them publish, and every receiver records every
//! delivery. The counts are exact once the run has drained (publishing stops at the deadline,
//! then the client waits, bounded, for what is in flight).

use serde::{Deserialize, Serialize};

use hdrhistogram::Histogram;

use crate::config::{Config, ConfigError};
use crate::latency::Percentiles;
use crate::slo::{Metric, Slo, SloCheck, Window};

/// The smallest broadcast message: a marker, the publisher, the sequence number and the send
/// time in hex.
pub const MIN_SIZE: usize = 41;

/// `--workload broadcast`: the relay's subscribers are the connections; these publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastConfig {
    /// How many of the connections publish (`--publishers`).
    pub publishers: u32,
}

impl BroadcastConfig {
    /// Checks these settings against the rest of `config`; the message names the flag.
    pub fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let invalid = |text: String| Err(ConfigError::Invalid(text));
        if self.publishers == 0 || self.publishers > config.connections {
            return invalid(format!(
                "--publishers {} must be between 1 and -c {}: publishers are some of the subscribers",
                self.publishers, config.connections
            ));
        }
        if config.size < MIN_SIZE {
            return invalid(format!(
                "--workload broadcast needs --size {MIN_SIZE} or more: each message carries its publisher, sequence number and send time"
            ));
        }
        if config.roundtrips != 0 || config.total.is_some() || config.stages.is_some() {
            return invalid(
                "--roundtrips, --total and --stages do not apply to --workload broadcast: its subscribers stay connected for the whole run".to_owned(),
            );
        }
        if config.slo_abort.is_some() {
            return invalid(
                "--slo-abort does not apply to --workload broadcast: its --slo is judged once, over the drained window".to_owned(),
            );
        }
        if config.ws_mode == crate::config::WsMode::Text {
            return invalid(
                "--workload broadcast sends binary messages; drop --ws-mode text".to_owned(),
            );
        }
        Ok(())
    }
}

/// A broadcast's exact counts: what one run counted after its drain, and what trials add up
/// to (`+=`), so a run's summary and a harness cell's total are one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastCounts {
    /// Messages published in the measured window.
    pub published: u64,
    /// `published` x `subscribers`: every message at every subscriber, its publisher included.
    pub deliveries_expected: u64,
    /// First arrivals of a published message at a subscriber.
    pub delivered: u64,
    /// `deliveries_expected` - `delivered`, once drained.
    pub missing: u64,
    /// Arrivals of a message a subscriber already had.
    pub duplicated: u64,
    /// Arrivals that came after a later message of the same publisher (counted in
    /// `delivered` too).
    pub out_of_order: u64,
    /// Subscribers whose connection the relay closed or lost during the run.
    pub subscribers_dropped: u64,
    /// Arrivals that were not one of the run's messages (wrong length, header or contents).
    pub malformed: u64,
}

impl BroadcastCounts {
    /// Deliveries that failed: missing, duplicated or malformed, plus one per subscriber the
    /// relay dropped (it may have had every message and still be a failure of the relay).
    pub fn failed_deliveries(&self) -> u64 {
        self.missing + self.duplicated + self.malformed + self.subscribers_dropped
    }
}

impl std::ops::AddAssign for BroadcastCounts {
    fn add_assign(&mut self, other: Self) {
        self.published += other.published;
        self.deliveries_expected += other.deliveries_expected;
        self.delivered += other.delivered;
        self.missing += other.missing;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.subscribers_dropped += other.subscribers_dropped;
        self.malformed += other.malformed;
    }
}

impl std::iter::Sum for BroadcastCounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        let mut total = Self::default();
        for counts in iter {
            total += counts;
        }
        total
    }
}

/// What a broadcast run delivered, beside the report's usual sections (where a "round trip"
/// is one delivery and its latency the delivery latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastSummary {
    /// Connections subscribed when publishing began.
    pub subscribers: u32,
    /// Of them, publishing.
    pub publishers: u32,
    /// The counts, exact once drained (flattened: the JSON fields sit beside these).
    #[serde(flatten)]
    pub counts: BroadcastCounts,
    /// Arrivals of any published message (warmup's included) while the window lasted: what
    /// the relay sustained, beside `delivered`, which also counts the window's messages that
    /// arrived during the drain. The report's `round_trips`.
    #[serde(default)]
    pub arrived_in_window: u64,
    /// `arrived_in_window` per second of the measured window.
    pub deliveries_per_s: f64,
    /// Whether every expected delivery had arrived (or was known lost) when the drain ended.
    pub drained: bool,
    /// From each message's send to its arrival at each subscriber (every delivery).
    pub delivery: Percentiles,
    /// From each message's send to its arrival at the last subscriber to get it (messages
    /// that reached every subscriber).
    pub slowest: Percentiles,
}

impl BroadcastSummary {
    /// `--slo` judged on deliveries: latency percentiles of the delivery latency; `errors`
    /// the failed deliveries over the expected ones; `rate` the deliveries that arrived in the
    /// window over those offered (`--rate` x subscribers, open loop only); `late` is 0, since
    /// no publish waits for an answer.
    pub fn judge(
        &self,
        slo: &Slo,
        delivery: &Histogram<u64>,
        measured: std::time::Duration,
        rate: Option<f64>,
    ) -> Vec<SloCheck> {
        let offered = rate.map(|r| r * f64::from(self.subscribers));
        let counted = Window {
            round_trips: self.counts.delivered,
            errors: self.counts.failed_deliveries(),
            late_sends: 0,
            duration: measured,
            latency: delivery,
        };
        let sustained = Window {
            round_trips: self.arrived_in_window,
            ..counted
        };
        let by_count = slo.judge(counted, offered);
        let by_arrival = slo.judge(sustained, offered);
        slo.limits
            .iter()
            .zip(by_count.into_iter().zip(by_arrival))
            .map(|(limit, (count, arrival))| match limit.metric {
                Metric::Rate => arrival,
                Metric::Percentile(_) | Metric::Errors | Metric::Late => count,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::latency;

    /// Judged on deliveries: 1,000 expected of which 10 missing is 1% errors (with a dropped
    /// subscriber), 900 arrivals in a 1 s window of 10/s x 100 subscribers offered is 90%.
    #[test]
    fn judges_deliveries() {
        let mut delivery = latency::histogram();
        for ms in 1..=100u64 {
            latency::record(&mut delivery, ms * 1_000_000);
        }
        let summary = BroadcastSummary {
            subscribers: 100,
            publishers: 1,
            counts: BroadcastCounts {
                published: 10,
                deliveries_expected: 1_000,
                delivered: 990,
                missing: 9,
                subscribers_dropped: 1,
                ..BroadcastCounts::default()
            },
            arrived_in_window: 900,
            deliveries_per_s: 900.0,
            drained: true,
            delivery: Percentiles::of(&delivery),
            slowest: Percentiles::of(&delivery),
        };
        let slo =
            Slo::parse("p95<=100ms,p95<90ms,errors<=1%,errors<1%,rate>=90%,rate>=91%").unwrap();
        let checks = summary.judge(&slo, &delivery, Duration::from_secs(1), Some(10.0));
        let met: Vec<bool> = checks.iter().map(|c| c.met).collect();
        assert_eq!(met, [true, false, true, false, true, false], "{checks:?}");
        let closed = summary.judge(&slo, &delivery, Duration::from_secs(1), None);
        assert_eq!(closed[4].shown, "nothing measured");
    }

    /// The counts sit flat in the report's JSON, as they did before they were a struct, and
    /// add up field by field.
    #[test]
    fn counts_are_flat_and_add() {
        let summary = BroadcastSummary {
            subscribers: 2,
            publishers: 1,
            counts: BroadcastCounts {
                published: 3,
                deliveries_expected: 6,
                delivered: 5,
                missing: 1,
                ..BroadcastCounts::default()
            },
            arrived_in_window: 5,
            deliveries_per_s: 5.0,
            drained: true,
            delivery: Percentiles::default(),
            slowest: Percentiles::default(),
        };
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["published"], 3);
        assert_eq!(json["missing"], 1);
        assert!(json.get("counts").is_none(), "{json}");
        let back: BroadcastSummary = serde_json::from_value(json).unwrap();
        assert_eq!(back, summary);
        let total: BroadcastCounts = [summary.counts, summary.counts].into_iter().sum();
        assert_eq!(
            (
                total.published,
                total.delivered,
                total.missing,
                total.failed_deliveries()
            ),
            (6, 10, 2, 2)
        );
    }
}
