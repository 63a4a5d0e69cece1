//! Live progress on stderr while a run is going, only when stderr is a terminal (so logs and
//! CI output stay clean): elapsed seconds, the last second's rate, errors.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use echobench_core::config::Config;

/// A progress bar, or nothing.
#[derive(Debug)]
pub(crate) struct LiveProgress {
    bar: Option<ProgressBar>,
}

impl LiveProgress {
    pub(crate) fn new(enabled: bool, config: &Config) -> LiveProgress {
        if !enabled || !std::io::stderr().is_terminal() {
            return LiveProgress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(config.duration.as_secs().max(1)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len}s  {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(if config.warmup.is_zero() {
            "starting"
        } else {
            "warming up"
        });
        bar.enable_steady_tick(Duration::from_millis(200));
        LiveProgress { bar: Some(bar) }
    }

    /// A second of the measured window completed.
    pub(crate) fn second(&self, index: u32, round_trips: u64, errors: u64, duration: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(u64::from(index) + 1);
            let rate = round_trips as f64 / duration.as_secs_f64().max(1e-9);
            bar.set_message(format!("{rate:.0} round trips/s, {errors} errors"));
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
