//! Capacity under an SLO: for each server and load, the highest offered rate (or number of
//! connections) at which the SLO still holds, found by a [`search`] and confirmed.
//!
//! A capacity does not depend on who wins a race for a core the way a saturated closed-loop
//! throughput does: every probe runs the server below, at or just above the load it can carry,
//! at a rate the client sets, and judges the result against fixed limits. The order of work:
//! round 0 searches every target (server x load) once, from `[search] start`; rounds 1 to
//! `confirm` search every target again, each starting at the value found before (so its first
//! probe confirms it) — rounds interleave over servers so drift in the machine spreads over
//! all of them. A search runs against one server session; every round starts a fresh one. The
//! capacity is where a logistic fit over all of a target's trusted probes puts a probe's
//! chance of meeting the SLO at one half ([`fit`]), with the fit's 95% interval; when the
//! probes have no knee to fit (every one passed, or every one failed), the mean of the
//! searches with Student's 95% interval over them.
//!
//! A failed probe is trusted only when its client was not saturated, CPU steal stayed at or
//! under 5% and the pacer kept its schedule (at most 1% of sends late by the client's own
//! doing): each of those could have failed the SLO on the server's behalf. (A probe that
//! passed in spite of them is a pass: none of them makes the SLO easier to meet. This matters
//! here, where a lightly loaded pair of vCPUs reports over 10% steal from wake-up delays.) An
//! untrusted probe is run again up to `[search] redo` times, and if it stays untrusted the
//! search ends there, saying what limited it. The orchestration takes its [`Executor`] as a
//! trait so that order, retries and results are tested without processes.

pub mod fit;
pub mod probe;
mod rounds;
pub mod search;
pub mod settings;
#[cfg(test)]
mod tests;

use std::future::Future;

use crate::matrix::Cell;
use crate::stats::{self, Spread};
pub use rounds::search_all;
use search::{End, Verdict};
use settings::{Mode, SearchSection};

/// One probe's load: what the client is asked to offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeLoad {
    /// Connections.
    pub connections: u32,
    /// Offered round trips per second in total.
    pub rate: f64,
}

/// What one probe measured (from the client's report and the server's CPU).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Achieved round trips per second.
    pub achieved: f64,
    /// Corrected latency percentiles, ns.
    pub p50_ns: u64,
    /// 99th.
    pub p99_ns: u64,
    /// 99.9th.
    pub p999_ns: u64,
    /// Round trips completed.
    pub round_trips: u64,
    /// Errors.
    pub errors: u64,
    /// Sends held back by an unanswered echo.
    pub late_sends: u64,
    /// Sends late by the client's own doing.
    pub pacer_late_sends: u64,
    /// Sends made: the round trips, or a broadcast's publishes (what `pacer_late_sends` is a
    /// share of).
    pub sends: u64,
    /// The client's CPU use as a fraction of its capacity.
    pub client_utilization: f64,
    /// The client's own flag.
    pub client_saturated: bool,
    /// CPU steal, percent.
    pub steal_percent: Option<f64>,
    /// Server CPU µs per round trip over the window.
    pub server_cpu_us_per_round_trip: Option<f64>,
    /// Whether the SLO held, judged by the client over the measured window.
    pub slo_met: bool,
    /// Each limit with the value measured (`p99<=1ms: 412µs`).
    pub slo_checks: String,
    /// The report's file, relative to the run folder.
    pub report_file: Option<String>,
}

impl Measured {
    /// Why this probe cannot be taken as the server's result, if it cannot. Steal comes
    /// first: a host that takes the CPUs away also makes the client look slow.
    pub fn untrusted(
        &self,
        max_steal_percent: f64,
        max_pacer_late_percent: f64,
    ) -> Option<Distrust> {
        if let Some(steal) = self.steal_percent.filter(|s| *s > max_steal_percent) {
            return Some(Distrust::Steal(steal));
        }
        if self.client_saturated {
            return Some(Distrust::Client(format!(
                "client saturated ({:.0}% of its CPU)",
                self.client_utilization * 100.0
            )));
        }
        let sends = self.sends.max(1) as f64;
        let behind = self.pacer_late_sends as f64 / sends;
        (100.0 * behind > max_pacer_late_percent).then(|| {
            Distrust::Client(format!(
                "pacer behind ({:.2}% of sends late by the client)",
                behind * 100.0
            ))
        })
    }
}

/// Why a probe's failure may not be the server's.
#[derive(Debug, Clone, PartialEq)]
pub enum Distrust {
    /// The host took the CPUs away (percent of the window): wait, and try the same load again.
    Steal(f64),
    /// The client could not offer the load (saturated, or its pacer fell behind): the load is
    /// beyond what this client measures, so it bounds the search from above.
    Client(String),
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Steal(steal) => write!(f, "CPU steal {steal:.1}%"),
            Distrust::Client(why) => f.write_str(why),
        }
    }
}

/// The first wait before a probe spoilt by steal is run again; it doubles each time.
pub const STEAL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// A probe whose pacer sent more than this share of its sends late (by its own doing) did
/// not offer the load it was asked to.
pub const PACER_BEHIND: f64 = 0.01;

/// One probe as recorded: its load, its outcome, and whether it counted.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRecord {
    /// The search it belongs to (0: the first; 1..: confirmations).
    pub search: u32,
    /// Its number within the search, from 1 (a redone probe keeps its number).
    pub index: u32,
    /// 0 for the probe itself; 1, 2, ... for the rechecks of its failure at the same load.
    pub again: u32,
    /// The value searched (rate, or connections).
    pub value: f64,
    /// The load offered.
    pub load: ProbeLoad,
    /// What it measured; `None` when the client failed (see `reason`).
    pub measured: Option<Measured>,
    /// Pass or fail, when trusted.
    pub verdict: Option<Verdict>,
    /// Why it did not count (untrusted or failed), else empty.
    pub reason: String,
    /// Whether a later run of the same probe replaced it.
    pub redone: bool,
}

/// A target's outcome over all its searches.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityResult {
    /// The load searched (rate `None`; connections 0 in connections mode).
    pub target: Cell,
    /// What was searched.
    pub mode: Mode,
    /// The SLO, as written.
    pub slo: String,
    /// Each search's capacity (the highest value that passed), in search order.
    pub estimates: Vec<f64>,
    /// How each search ended.
    pub ends: Vec<End>,
    /// Every probe made, in order.
    pub probes: Vec<ProbeRecord>,
    /// Confirmations whose first probe, at the value found before, passed.
    pub confirmed: u32,
    /// Confirmation searches made.
    pub confirmations: u32,
    /// Why a search stopped short (untrusted probes, a failed server), if one did.
    pub limited_by: Option<String>,
    /// The per-connection rate in connections mode.
    pub per_connection_rate: Option<f64>,
}

impl CapacityResult {
    /// The capacity: the fit over every trusted probe when there is a knee to fit, else the
    /// mean of the searches.
    pub fn capacity(&self) -> Option<Estimate> {
        let probes: Vec<(f64, bool)> = self
            .probes
            .iter()
            .filter(|p| !p.redone)
            .filter_map(|p| p.verdict.map(|v| (p.value, v == Verdict::Pass)))
            .collect();
        if let Some(fit) = fit::fit(&probes) {
            return Some(Estimate {
                value: fit.capacity,
                ci95: Some(fit.ci95),
                method: Method::Fit,
            });
        }
        self.searches().map(|s| Estimate {
            value: s.mean,
            ci95: s.ci95,
            method: Method::Searches,
        })
    }

    /// The searches' own capacities (the highest value each one passed), summarised.
    pub fn searches(&self) -> Option<Spread> {
        stats::spread(&self.counted())
    }

    /// The estimates the searches' summary is over: every search's, except that a search
    /// stopped short or bounded by an untrusted probe (a lower bound only) is left out when
    /// any other search converged on its own.
    pub fn counted(&self) -> Vec<f64> {
        let whole: Vec<f64> = self
            .estimates
            .iter()
            .zip(&self.ends)
            .filter(|(_, end)| !matches!(end, End::Stopped | End::Untrusted))
            .map(|(e, _)| *e)
            .collect();
        if whole.is_empty() {
            self.estimates.clone()
        } else {
            whole
        }
    }

    /// The capacity as a rate (connections mode: connections x per-connection rate).
    pub fn capacity_rps(&self) -> Option<f64> {
        let value = self.capacity()?.value;
        Some(match self.mode {
            Mode::Rate => value,
            Mode::Connections => value * self.per_connection_rate.unwrap_or(0.0),
        })
    }

    /// Probes run again because they could not be trusted.
    pub fn redone(&self) -> usize {
        self.probes.iter().filter(|p| p.redone).count()
    }

    /// The trusted, passing probe at the highest value of the first search: the measurement
    /// at the capacity (its latency and server cost).
    pub fn at_capacity(&self) -> Option<&ProbeRecord> {
        self.probes
            .iter()
            .filter(|p| p.verdict == Some(Verdict::Pass))
            .max_by(|a, b| {
                (a.search == 0)
                    .cmp(&(b.search == 0))
                    .then(a.value.total_cmp(&b.value))
            })
    }
}

/// A target's capacity (a rate, or connections) and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The capacity.
    pub value: f64,
    /// Its 95% interval (`None` from a single search).
    pub ci95: Option<(f64, f64)>,
    /// How it was reached.
    pub method: Method,
}

/// How a capacity was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The logistic fit over every trusted probe: the load passing half the time.
    Fit,
    /// The mean of the searches: the probes had no knee to fit.
    Searches,
}

impl Method {
    /// As written in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Fit => "fit",
            Method::Searches => "searches",
        }
    }
}

/// What runs probes: starts a server session for a target, probes it, stops it.
pub trait Executor {
    /// Starts a fresh session of `target`'s server; `Err` says why it could not.
    fn start(&mut self, target: &Cell, round: u32) -> impl Future<Output = Result<(), String>>;
    /// Runs one probe against the session; `Err` when the client produced no report.
    fn probe(
        &mut self,
        target: &Cell,
        load: ProbeLoad,
        name: &str,
    ) -> impl Future<Output = Result<Measured, String>>;
    /// Stops the session.
    fn stop(&mut self) -> impl Future<Output = ()>;
    /// Waits `pause` (for steal to pass) before a probe is tried again.
    fn pause(&mut self, pause: std::time::Duration) -> impl Future<Output = ()>;
    /// Whether the run has been interrupted (checked between probes).
    fn interrupted(&self) -> bool;
}

/// Told after every probe and every search, so results can be written as they come.
pub trait Observer {
    /// A probe of `results[target]` was recorded (its last).
    fn probed(&mut self, results: &[CapacityResult], target: usize);
    /// A search of `results[target]` ended (its last estimate, or `limited_by`).
    fn searched(&mut self, results: &[CapacityResult], target: usize);
}

/// The client load of a probe at `value`. In connections mode each connection receives
/// `per_connection_rate` messages per second: its own echoes, or for a broadcast every message
/// of a publish rate that high (so a broadcast's subscribers grow while its publish rate stays,
/// as in the websocket-shootout's stepped test; never fewer subscribers than publishers).
pub fn probe_load(target: &Cell, value: f64, settings: &SearchSection) -> ProbeLoad {
    match (settings.mode, target.publishers) {
        (Mode::Rate, _) => ProbeLoad {
            connections: target.connections,
            rate: value,
        },
        (Mode::Connections, None) => ProbeLoad {
            connections: value as u32,
            rate: value * settings.per_connection_rate,
        },
        (Mode::Connections, Some(publishers)) => ProbeLoad {
            connections: (value as u32).max(publishers),
            rate: settings.per_connection_rate,
        },
    }
}

/// The target as a file-name fragment: `hyper-c64-s32-r0`, or `hyper-cN-s32-r0` when the
/// connections are what is searched.
pub fn target_name(target: &Cell) -> String {
    match target.connections {
        0 => format!(
            "{}-cN-s{}-r{}",
            target.server, target.size, target.roundtrips
        ),
        _ => target.id(),
    }
}

impl ProbeRecord {
    /// One line for progress output.
    pub fn describe(&self, target: &Cell) -> String {
        let outcome = match (&self.verdict, &self.measured) {
            (Some(v), Some(m)) => format!(
                "{} (corrected p99 {}, {:.0} rt/s)",
                match v {
                    Verdict::Pass => "pass",
                    Verdict::Fail => "fail",
                },
                echobench_core::format::duration(m.p99_ns),
                m.achieved
            ),
            _ => format!(
                "not counted: {}",
                self.reason.lines().next().unwrap_or_default()
            ),
        };
        let again = match self.again {
            0 => String::new(),
            n => format!(" (recheck {n} of a failure)"),
        };
        format!(
            "capacity {} search {} probe {}{again} at {:.0} rt/s over {} connections: {outcome}",
            target_name(target),
            self.search,
            self.index,
            self.load.rate,
            self.load.connections
        )
    }
}

impl CapacityResult {
    /// One line for progress output: the latest estimate, or why the search stopped.
    pub fn describe(&self) -> String {
        let unit = match self.mode {
            Mode::Rate => "rt/s",
            Mode::Connections => "connections",
        };
        match (&self.limited_by, self.estimates.last()) {
            (Some(why), _) => format!("capacity {}: {why}", target_name(&self.target)),
            (None, Some(e)) => format!(
                "capacity {} search {}: {e:.0} {unit} ({})",
                target_name(&self.target),
                self.estimates.len() - 1,
                self.ends.last().map_or("", |e| e.as_str())
            ),
            (None, None) => format!("capacity {}: no search finished", target_name(&self.target)),
        }
    }
}

fn describe_value(value: f64, mode: Mode) -> String {
    match mode {
        Mode::Rate => format!("{value:.0}/s"),
        Mode::Connections => format!("{value:.0} connections"),
    }
}
