//! The `[slo]` and `[search]` blocks of a harness config: what a capacity search holds a
//! server to, and how it searches. Both may be left out; the defaults are the published
//! headline's (corrected p99 within 1 ms, no errors, at most 1% of sends held back by the
//! server, at least 99% of the offered rate achieved; a doubling search from 1,000/s refined to
//! 2%, confirmed twice).

use std::time::Duration;

use echobench_core::slo::Slo;
use serde::{Deserialize, Serialize};

use super::search::Bounds;

/// `[slo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloSection {
    /// The limits, in echo-client's `--slo` syntax.
    pub limits: String,
}

/// The default SLO of a capacity search.
pub const DEFAULT_SLO: &str = "p99<=1ms,errors<=0%,late<=1%,rate>=99%";

impl Default for SloSection {
    fn default() -> Self {
        SloSection {
            limits: DEFAULT_SLO.to_owned(),
        }
    }
}

/// What a search varies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The offered rate, at the matrix's number of connections.
    #[default]
    Rate,
    /// The number of connections, each offering `per_connection_rate`.
    Connections,
}

impl Mode {
    /// As written in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rate => "rate",
            Mode::Connections => "connections",
        }
    }
}

/// `[search]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSection {
    /// What is searched.
    pub mode: Mode,
    /// The first probe: round trips per second, or connections.
    pub start: f64,
    /// Each step of the opening multiplies the last passing value by this.
    pub factor: f64,
    /// Refined until the lowest failure is within this fraction above the highest pass.
    pub tolerance: f64,
    /// Lowest value probed.
    pub min: f64,
    /// Highest value probed; a server that passes it is reported as "at least" this.
    pub max: f64,
    /// Confirmation searches after the first, each starting at the value found, interleaved
    /// over servers; the capacity is fitted to the probes of all of them (see `fit`).
    pub confirm: u32,
    /// Connections mode: the rate each connection offers (round trips per second).
    pub per_connection_rate: f64,
    /// Measured window of each probe.
    #[serde(with = "crate::config::duration")]
    pub duration: Duration,
    /// Load before each probe's window (counted from the moment every connection is open).
    #[serde(with = "crate::config::duration")]
    pub warmup: Duration,
    /// Pause between probes.
    #[serde(with = "crate::config::duration")]
    pub cooldown: Duration,
    /// Times an untrusted probe (client saturated, steal, pacer behind) is run again before
    /// the search gives up at it.
    pub redo: u32,
    /// Times a trusted failure is probed again at the same load before the search takes it
    /// as a failure: one pass among them and the search goes on above it. Every probe is kept
    /// and weighed by the capacity's fit.
    pub recheck: u32,
    /// Most probes one search may make.
    pub max_probes: u32,
    /// A failed probe with more CPU steal than this (percent) is not trusted.
    pub max_steal_percent: f64,
    /// A failed probe whose pacer sent more than this share of its sends late by its own doing
    /// (percent) is not trusted.
    pub max_pacer_late_percent: f64,
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            mode: Mode::Rate,
            start: 1000.0,
            factor: 2.0,
            tolerance: 0.02,
            min: 10.0,
            max: 2_000_000.0,
            confirm: 2,
            per_connection_rate: 1.0,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(500),
            cooldown: Duration::from_millis(100),
            redo: 2,
            recheck: 1,
            max_probes: 30,
            max_steal_percent: echobench_core::thresholds::HIGH_STEAL_PERCENT,
            max_pacer_late_percent: 100.0 * super::PACER_BEHIND,
        }
    }
}

impl SearchSection {
    /// The bounds of one search.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min: self.min,
            max: self.max,
            tolerance: self.tolerance,
            integer: self.mode == Mode::Connections,
            max_probes: self.max_probes,
        }
    }

    /// `--quick`: shorter probes, no confirmation.
    pub fn quick(&mut self) {
        self.duration = Duration::from_millis(500);
        self.warmup = Duration::from_millis(200);
        self.confirm = 0;
    }

    /// Checks the block; the message names the field.
    pub fn validate(&self, slo: &SloSection) -> Result<(), String> {
        Slo::parse(&slo.limits).map_err(|err| format!("[slo] limits: {err}"))?;
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        if !(finite_positive(self.min) && finite_positive(self.max) && self.min < self.max) {
            return Err(format!(
                "[search] min ({}) and max ({}) must be positive with min < max",
                self.min, self.max
            ));
        }
        if !(self.min..=self.max).contains(&self.start) {
            return Err(format!(
                "[search] start ({}) must lie between min ({}) and max ({})",
                self.start, self.min, self.max
            ));
        }
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err(format!(
                "[search] factor ({}) must be greater than 1",
                self.factor
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance <= 0.5) {
            return Err(format!(
                "[search] tolerance ({}) must be above 0 and at most 0.5 (0.02 = 2%)",
                self.tolerance
            ));
        }
        if self.mode == Mode::Connections && !finite_positive(self.per_connection_rate) {
            return Err(format!(
                "[search] per_connection_rate ({}) must be a positive rate for mode = \"connections\"",
                self.per_connection_rate
            ));
        }
        if self.duration.is_zero() {
            return Err("[search] duration must be greater than zero".into());
        }
        for (name, value) in [
            ("max_steal_percent", self.max_steal_percent),
            ("max_pacer_late_percent", self.max_pacer_late_percent),
        ] {
            if value.is_nan() || value < 0.0 {
                return Err(format!("[search] {name} ({value}) must be a percentage"));
            }
        }
        if self.max_probes == 0 {
            return Err("[search] max_probes must be at least 1".into());
        }
        Ok(())
    }
}
