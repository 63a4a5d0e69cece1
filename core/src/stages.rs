//! Load stages (`--stages`), as k6's stages and ramping executors give them: the measured
//! window is a sequence of stages, each ramping the load linearly from where the previous one
//! left it, or stepping to a level and holding it. The load is the open-loop rate (round trips
//! per second) with `--rate`, which is also the level the run starts at, or else the number of
//! connections, starting at `-c`.
//!
//! ```text
//! 5s:1000          ramp to 1000 over 5 s
//! 20s:=50000       step to 50000 and hold it for 20 s
//! 10s:+1000*5      five stages of 10 s, each 1000 above the one before
//! 10s:x2*4         four stages of 10 s, each twice the one before
//! ```
//!
//! Everything here is arithmetic on the resolved [`Stage`]s: the level at any instant, the
//! number of sends a rate profile offers up to an instant, and its inverse (when the k-th send
//! is due), which the client's open-loop schedule follows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One stage, resolved: the load goes linearly from `from` to `to` over `duration` (a step
/// has `from == to`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Length of the stage.
    #[serde(rename = "duration_s", with = "crate::config::secs")]
    pub duration: Duration,
    /// Level at its start.
    pub from: f64,
    /// Level at its end.
    pub to: f64,
}

impl Stage {
    /// The mean level over the stage.
    pub fn mean(&self) -> f64 {
        (self.from + self.to) / 2.0
    }
}

/// How one item of the expression moves the level.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Move {
    Ramp(f64),
    Step(f64),
    Add(f64, u32),
    Times(f64, u32),
}

/// A `--stages` expression, parsed (serialized as the text it was written as).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stages {
    text: String,
    items: Vec<(Duration, Move)>,
}

/// A bad `--stages` expression: which part, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--stages `{expression}`: {reason}\n  {expression}\n  {marker}")]
pub struct StagesError {
    /// The whole expression.
    pub expression: String,
    /// What is wrong with the marked part.
    pub reason: String,
    /// Carets under the bad part.
    pub marker: String,
}

/// The most stages one expression may expand to (a typo such as `*50000` is refused rather
/// than expanded).
pub const MAX_STAGES: usize = 1000;

impl FromStr for Stages {
    type Err = StagesError;

    fn from_str(expression: &str) -> Result<Stages, StagesError> {
        let mut items = Vec::new();
        let mut offset = 0;
        let mut expanded = 0usize;
        for part in expression.split(',') {
            let trimmed = part.trim();
            let start = offset + (part.len() - part.trim_start().len());
            offset += part.len() + 1;
            let fail = |reason: &str, from: usize, len: usize| StagesError {
                expression: expression.to_owned(),
                reason: reason.to_owned(),
                marker: format!("{}{}", " ".repeat(from), "^".repeat(len.max(1))),
            };
            let Some((duration, target)) = trimmed.split_once(':') else {
                return Err(fail(
                    "a stage is DURATION:TARGET, e.g. 10s:5000, 10s:=5000, 10s:+1000*5 or 10s:x2*4",
                    start,
                    trimmed.len(),
                ));
            };
            let duration = humantime::parse_duration(duration.trim()).map_err(|_| {
                fail(
                    "not a duration (e.g. 500ms, 10s, 2m)",
                    start,
                    duration.len(),
                )
            })?;
            let target_at = start + trimmed.len() - target.len();
            let bad_target = |reason| fail(reason, target_at, target.len());
            let number = |text: &str| -> Option<f64> {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
            };
            let repeated = |text: &str| -> Option<(f64, u32)> {
                match text.split_once('*') {
                    Some((value, times)) => Some((
                        number(value)?,
                        times.trim().parse::<u32>().ok().filter(|n| *n > 0)?,
                    )),
                    None => Some((number(text)?, 1)),
                }
            };
            let target = target.trim();
            let movement = if let Some(rest) = target.strip_prefix('=') {
                number(rest).map(Move::Step)
            } else if let Some(rest) = target.strip_prefix('+') {
                repeated(rest).map(|(k, n)| Move::Add(k, n))
            } else if let Some(rest) = target.strip_prefix(['x', '*']) {
                repeated(rest).map(|(f, n)| Move::Times(f, n))
            } else {
                number(target).map(Move::Ramp)
            }
            .ok_or_else(|| {
                bad_target(
                    "not a target: a number (ramp to it), =N (step to it), +N*M (M steps up by N) or xF*M (M steps times F)",
                )
            })?;
            expanded += match movement {
                Move::Add(_, n) | Move::Times(_, n) => n as usize,
                Move::Ramp(_) | Move::Step(_) => 1,
            };
            if expanded > MAX_STAGES {
                return Err(bad_target("more than 1000 stages"));
            }
            if duration.is_zero() {
                return Err(fail(
                    "a stage must last longer than 0s (to jump, use =N)",
                    start,
                    trimmed.len() - target.len() - 1,
                ));
            }
            items.push((duration, movement));
        }
        Ok(Stages {
            text: expression.to_owned(),
            items,
        })
    }
}

impl TryFrom<String> for Stages {
    type Error = StagesError;

    fn try_from(text: String) -> Result<Stages, StagesError> {
        text.parse()
    }
}

impl From<Stages> for String {
    fn from(stages: Stages) -> String {
        stages.text
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Stages {
    /// An expression for `stages`: a step (`D:=N`) for a stage that holds its level, a ramp
    /// (`D:N`) for one that moves; a ramp starts where the stage before it ended (or at the
    /// run's start level), as every resolved profile's do. How a shard's stages are written:
    /// its share of every level of the test's.
    pub fn of_resolved(stages: &[Stage]) -> Stages {
        let mut text = Vec::with_capacity(stages.len());
        let mut items = Vec::with_capacity(stages.len());
        for stage in stages {
            let duration = humantime::format_duration(stage.duration);
            if stage.from == stage.to {
                text.push(format!("{duration}:={}", stage.to));
                items.push((stage.duration, Move::Step(stage.to)));
            } else {
                text.push(format!("{duration}:{}", stage.to));
                items.push((stage.duration, Move::Ramp(stage.to)));
            }
        }
        Stages {
            text: text.join(","),
            items,
        }
    }

    /// The stages, starting from level `start`.
    pub fn resolve(&self, start: f64) -> Vec<Stage> {
        let mut level = start;
        let mut stages = Vec::new();
        for &(duration, movement) in &self.items {
            match movement {
                Move::Ramp(to) | Move::Step(to) => {
                    // A ramp starts where the load is; a step jumps to its level at once.
                    let from = if matches!(movement, Move::Ramp(_)) {
                        level
                    } else {
                        to
                    };
                    stages.push(Stage { duration, from, to });
                    level = to;
                }
                Move::Add(by, times) | Move::Times(by, times) => {
                    for _ in 0..times {
                        level = match movement {
                            Move::Add(..) => level + by,
                            _ => level * by,
                        };
                        stages.push(Stage {
                            duration,
                            from: level,
                            to: level,
                        });
                    }
                }
            }
        }
        stages
    }

    /// The total length of the stages.
    pub fn duration(&self) -> Duration {
        self.items
            .iter()
            .map(|(d, m)| match m {
                Move::Add(_, n) | Move::Times(_, n) => *d * *n,
                Move::Ramp(_) | Move::Step(_) => *d,
            })
            .sum()
    }
}

/// The level of a profile `elapsed` into it (the last stage's end level after it).
pub fn level_at(stages: &[Stage], elapsed: Duration) -> f64 {
    let mut start = Duration::ZERO;
    for stage in stages {
        if elapsed < start + stage.duration {
            let into = (elapsed - start).as_secs_f64() / stage.duration.as_secs_f64();
            return stage.from + (stage.to - stage.from) * into;
        }
        start += stage.duration;
    }
    stages.last().map_or(0.0, |s| s.to)
}

/// Sends a rate profile offers from its start until `elapsed` (the integral of the rate).
pub fn offered_until(stages: &[Stage], elapsed: Duration) -> f64 {
    let mut total = 0.0;
    let mut start = Duration::ZERO;
    for stage in stages {
        let len = stage.duration.as_secs_f64();
        if elapsed >= start + stage.duration {
            total += stage.mean() * len;
        } else {
            let t = (elapsed.saturating_sub(start)).as_secs_f64();
            let slope = (stage.to - stage.from) / len;
            return total + stage.from * t + slope * t * t / 2.0;
        }
        start += stage.duration;
    }
    total
}

/// When the profile has offered `sends` sends: the instant (from its start) at which the
/// integral of the rate reaches `sends`, or `None` if it never does within the stages.
pub fn time_of(stages: &[Stage], sends: f64) -> Option<Duration> {
    let mut left = sends;
    let mut start = Duration::ZERO;
    for stage in stages {
        let len = stage.duration.as_secs_f64();
        let here = stage.mean() * len;
        if left <= here && here > 0.0 {
            let (a, slope) = (stage.from, (stage.to - stage.from) / len);
            // Solve a·t + slope·t²/2 = left for the first t >= 0.
            let t = if slope.abs() < 1e-12 {
                left / a
            } else {
                let discriminant = (a * a + 2.0 * slope * left).max(0.0);
                (discriminant.sqrt() - a) / slope
            };
            return Some(start + Duration::from_secs_f64(t.clamp(0.0, len)));
        }
        left -= here;
        start += stage.duration;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64, from: f64, to: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            from,
            to,
        }
    }

    /// Each form resolves as written, from the starting level.
    #[test]
    fn forms() {
        let cases: [(&str, f64, Vec<Stage>); 5] = [
            (
                "5s:1000,20s:50000",
                0.0,
                vec![s(5, 0.0, 1000.0), s(20, 1000.0, 50000.0)],
            ),
            (
                "10s:=500, 5s:0",
                100.0,
                vec![s(10, 500.0, 500.0), s(5, 500.0, 0.0)],
            ),
            (
                "10s:+1000*3",
                1000.0,
                vec![
                    s(10, 2000.0, 2000.0),
                    s(10, 3000.0, 3000.0),
                    s(10, 4000.0, 4000.0),
                ],
            ),
            ("2s:x2*2", 10.0, vec![s(2, 20.0, 20.0), s(2, 40.0, 40.0)]),
            ("1s:+5", 1.0, vec![s(1, 6.0, 6.0)]),
        ];
        for (text, start, want) in cases {
            let stages: Stages = text.parse().unwrap();
            assert_eq!(stages.resolve(start), want, "{text}");
            let total: Duration = want.iter().map(|s| s.duration).sum();
            assert_eq!(stages.duration(), total, "{text}");
            assert_eq!(stages.to_string(), text);
        }
    }

    /// Bad parts are named and marked.
    #[test]
    fn errors() {
        let cases = [
            ("5s", "a stage is DURATION:TARGET", "^^"),
            ("5s:100,fast:3", "not a duration", "       ^^^^"),
            ("5s:100,2s:lots", "not a target", "          ^^^^"),
            ("5s:-3", "not a target", "   ^^"),
            ("0s:100", "longer than 0s", "^^"),
            ("1s:+1*2000", "more than 1000 stages", "   ^^^^^^^"),
            ("1s:x2*0", "not a target", "   ^^^^"),
        ];
        for (text, reason, marker) in cases {
            let err = text.parse::<Stages>().unwrap_err();
            assert!(err.reason.contains(reason), "{text}: {}", err.reason);
            assert_eq!(err.marker, marker, "{text}");
        }
    }

    /// Level, integral and inverse of a ramp 0 -> 100/s over 10 s, then a hold at 100/s for
    /// 10 s: 500 sends by 10 s, 1500 by 20 s; the 125th send at 5 s, the 1000th at 15 s.
    #[test]
    fn profile_arithmetic() {
        let p = [s(10, 0.0, 100.0), s(10, 100.0, 100.0)];
        let at = Duration::from_secs;
        assert_eq!(level_at(&p, at(5)), 50.0);
        assert_eq!(level_at(&p, at(15)), 100.0);
        assert_eq!(level_at(&p, at(30)), 100.0);
        assert_eq!(offered_until(&p, at(10)), 500.0);
        assert_eq!(offered_until(&p, at(5)), 125.0);
        assert_eq!(offered_until(&p, at(20)), 1500.0);
        assert_eq!(time_of(&p, 125.0), Some(at(5)));
        assert_eq!(time_of(&p, 1000.0), Some(at(15)));
        assert_eq!(time_of(&p, 1500.5), None);
        // A stage at rate 0 offers nothing and is passed over.
        let gap = [s(5, 10.0, 10.0), s(5, 0.0, 0.0), s(5, 10.0, 10.0)];
        assert_eq!(time_of(&gap, 60.0), Some(at(11)));
    }
}
