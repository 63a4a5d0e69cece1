//! One trial of one cell: what ran, how it ended, the client's report and the server's cost.
//! A row of `raw.csv`.

use std::time::{Duration, SystemTime};

use echobench_core::Report;

use crate::matrix::Cell;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It ran to the end; the report may still contain errors (they are data).
    Ok,
    /// It could not run or its server crashed; `reason` says why.
    Failed,
    /// The harness was interrupted during it; the report covers what ran.
    Interrupted,
}

impl Status {
    /// As written in CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// What the server used during the measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerCost {
    /// CPU time of its whole process group over the measured window.
    pub cpu: Option<Duration>,
    /// Resident memory right after it became ready, before any load.
    pub rss_idle: u64,
    /// Largest resident memory sampled during the window.
    pub rss_peak: Option<u64>,
}

/// One trial.
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// Trial number, from 1.
    pub trial: u32,
    /// 0 for the first pass; n for the nth `--retry-noisy` round.
    pub attempt: u32,
    /// What was run.
    pub cell: Cell,
    /// How it ended.
    pub status: Status,
    /// Why it failed (empty when fine); warnings otherwise.
    pub reason: String,
    /// When it started.
    pub started_at: SystemTime,
    /// The echo-client arguments (after the program name).
    pub client_args: Vec<String>,
    /// The client's report.
    pub report: Option<Box<Report>>,
    /// The report's file, relative to the run folder.
    pub report_file: Option<String>,
    /// The server's cost.
    pub server: Option<ServerCost>,
    /// Why this trial was run again instead of counted (see [`TrialResult::untrusted`]);
    /// empty when it counts.
    pub redone: String,
}

impl TrialResult {
    /// A trial that has started and measured nothing yet: it counts as failed (with no
    /// reason) until a report is attached and its status set.
    pub fn started(cell: &Cell, trial: u32, attempt: u32, started_at: SystemTime) -> TrialResult {
        TrialResult {
            trial,
            attempt,
            cell: cell.clone(),
            status: Status::Failed,
            reason: String::new(),
            started_at,
            client_args: Vec::new(),
            report: None,
            report_file: None,
            server: None,
            redone: String::new(),
        }
    }

    /// A trial that failed before producing anything, for `reason`.
    pub fn failed(
        cell: &Cell,
        trial: u32,
        attempt: u32,
        started_at: SystemTime,
        reason: String,
    ) -> TrialResult {
        TrialResult {
            reason,
            ..TrialResult::started(cell, trial, attempt, started_at)
        }
    }

    /// Round trips per second, for a trial that ran.
    pub fn round_trips_per_s(&self) -> Option<f64> {
        self.ok_report().map(|r| r.summary.round_trips_per_s)
    }

    /// The report of a trial that ran to the end and counts (was not redone).
    pub fn ok_report(&self) -> Option<&Report> {
        match self.status {
            Status::Ok if self.redone.is_empty() => self.report.as_deref(),
            Status::Ok | Status::Failed | Status::Interrupted => None,
        }
    }

    /// Why this trial's figures cannot be taken as the server's, if they cannot: CPU steal
    /// above 5%, and at a fixed rate also a saturated client or a pacer that fell behind (more
    /// than 1% of its sends late by its own doing). A closed-loop client is saturated by
    /// design on a fast server, so there that is a flag (S), not a reason to run again.
    pub fn untrusted(&self) -> Option<String> {
        use crate::capacity::Distrust;
        // The same rules, and words, as a capacity probe's.
        let why = crate::capacity::probe::measured(self.ok_report()?, None).untrusted(
            echobench_core::thresholds::HIGH_STEAL_PERCENT,
            100.0 * crate::capacity::PACER_BEHIND,
        )?;
        match why {
            Distrust::Client(_) if self.cell.rate.is_none() => None,
            Distrust::Steal(_) | Distrust::Client(_) => Some(why.to_string()),
        }
    }

    /// Server CPU microseconds per completed round trip.
    pub fn server_cpu_us_per_round_trip(&self) -> Option<f64> {
        let report = self.report.as_deref()?;
        let cpu = self.server?.cpu?;
        (report.summary.round_trips > 0)
            .then(|| cpu.as_secs_f64() * 1e6 / report.summary.round_trips as f64)
    }

    /// Server CPU use over the window as a fraction of one CPU.
    pub fn server_cpu_utilization(&self) -> Option<f64> {
        let report = self.report.as_deref()?;
        let cpu = self.server?.cpu?;
        (report.measured_s > 0.0).then(|| cpu.as_secs_f64() / report.measured_s)
    }

    /// Memory the load added per connection: (peak − idle) / connections, in bytes.
    pub fn rss_per_connection(&self) -> Option<f64> {
        let server = self.server?;
        let peak = server.rss_peak?;
        Some(peak.saturating_sub(server.rss_idle) as f64 / f64::from(self.cell.connections))
    }

    /// CPU steal during the trial, from the client's report.
    pub fn steal_percent(&self) -> Option<f64> {
        self.report.as_deref()?.client.steal_percent
    }
}
