//! Progress while a run goes: which trial of how many, the ETA, the last result. A bar on a
//! terminal; one line per trial otherwise (so CI logs show the run too).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::trial::{Status, TrialResult};

/// Progress over `total` trials.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    started: Instant,
}

impl Progress {
    /// A progress display for `total` trials.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("[{bar:30}] {pos}/{len} trials, ETA {eta}  {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            started: Instant::now(),
        }
    }

    /// More trials were added (retries).
    pub fn extend(&mut self, more: usize) {
        self.total += more;
        if let Some(bar) = &self.bar {
            bar.set_length(self.total as u64);
        }
    }

    /// A trial is starting.
    pub fn starting(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("running {what}"));
        }
    }

    /// A trial ended.
    pub fn finished(&mut self, result: &TrialResult) {
        self.done += 1;
        let outcome = match (result.status, result.ok_report()) {
            _ if !result.redone.is_empty() => format!("to be run again: {}", result.redone),
            (Status::Ok, Some(report)) => format!(
                "{:.0} rt/s, p99 {}",
                report.summary.round_trips_per_s,
                echobench_core::format::duration(report.latency.round_trip.p99)
            ),
            (status, _) => format!(
                "{}: {}",
                status.as_str(),
                result.reason.lines().next().unwrap_or("")
            ),
        };
        let line = format!("{} trial {}: {outcome}", result.cell, result.trial);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line);
            }
            None => {
                let elapsed = self.started.elapsed();
                let eta = elapsed.mul_f64(
                    (self.total - self.done.min(self.total)) as f64 / self.done.max(1) as f64,
                );
                eprintln!(
                    "[{}/{}] {line} (ETA {})",
                    self.done,
                    self.total,
                    humantime::format_duration(Duration::from_secs(eta.as_secs()))
                );
            }
        }
    }

    /// A line about something other than a trial (a capacity probe): above the bar, or on
    /// its own line.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// The run ended.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
