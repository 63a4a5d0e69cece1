//! The broadcast workload's settings and what its report adds (`--workload broadcast`): N
//! subscribers stay connected to a relay, P of them publish, and every receiver records every
//! delivery. The counts are exact once the run has drained (publishing stops at the deadline,
//! then the client waits, bounded, for what is in flight).

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::latency::Percentiles;

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
        if config.ws_mode == crate::config::WsMode::Text {
            return invalid(
                "--workload broadcast sends binary messages; drop --ws-mode text".to_owned(),
            );
        }
        Ok(())
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
    /// Deliveries per second of the measured window.
    pub deliveries_per_s: f64,
    /// Whether every expected delivery had arrived (or was known lost) when the drain ended.
    pub drained: bool,
    /// From each message's send to its arrival at each subscriber (every delivery).
    pub delivery: Percentiles,
    /// From each message's send to its arrival at the last subscriber to get it (messages
    /// that reached every subscriber).
    pub slowest: Percentiles,
}
