//! Service-level objectives a run is judged against (`--slo 'p99<2ms,p999<10ms,errors<0.1%,
//! rate>=99%'`): latency percentiles (corrected in open loop, where that is what a user saw),
//! the share of failed round trips, and the achieved share of the offered rate. Parsed once,
//! embedded in the config, judged from a [`Measurement`] — the whole window, or any part of it
//! such as one second — so a report says each limit, the value measured, and whether it held.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use hdrhistogram::Histogram;

use crate::measurement::{Measurement, Second};

/// What limits are judged on: a whole measured window, or one second of it.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Completed round trips.
    pub round_trips: u64,
    /// Failed round trips (and connects).
    pub errors: u64,
    /// Open loop: sends held back by an unanswered echo.
    pub late_sends: u64,
    /// The window's length.
    pub duration: Duration,
    /// The latency users saw: corrected in open loop, round-trip time in closed loop.
    pub latency: &'a Histogram<u64>,
}

impl<'a> From<&'a Measurement> for Window<'a> {
    fn from(m: &'a Measurement) -> Window<'a> {
        Window {
            round_trips: m.counts.round_trips,
            errors: m.error_count(),
            late_sends: m.counts.late_sends,
            duration: m.measured,
            latency: m
                .latencies
                .corrected
                .as_ref()
                .unwrap_or(&m.latencies.round_trip),
        }
    }
}

impl<'a> From<&'a Second> for Window<'a> {
    fn from(s: &'a Second) -> Window<'a> {
        Window {
            round_trips: s.round_trips,
            errors: s.errors,
            late_sends: s.late_sends,
            duration: s.duration,
            latency: s.corrected.as_ref().unwrap_or(&s.round_trip),
        }
    }
}

/// What a limit constrains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "metric", content = "quantile")]
pub enum Metric {
    /// A latency percentile (the quantile, e.g. 0.99), in nanoseconds.
    Percentile(f64),
    /// Failed round trips as a fraction of all attempted (0.001 = 0.1%).
    Errors,
    /// Achieved round trips per second as a fraction of the offered rate (open loop only).
    Rate,
    /// Sends held back by an unanswered echo as a fraction of the round trips (open loop
    /// only): the server falling behind its schedule.
    Late,
}

/// How the measured value must compare with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `<`
    #[serde(rename = "<")]
    Below,
    /// `<=`
    #[serde(rename = "<=")]
    AtMost,
    /// `>`
    #[serde(rename = ">")]
    Above,
    /// `>=`
    #[serde(rename = ">=")]
    AtLeast,
}

impl Comparison {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Comparison::Below => measured < limit,
            Comparison::AtMost => measured <= limit,
            Comparison::Above => measured > limit,
            Comparison::AtLeast => measured >= limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
        }
    }
}

/// One limit: `metric comparison value`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// The text it was parsed from (`p99<2ms`).
    pub text: String,
    /// What it constrains.
    #[serde(flatten)]
    pub metric: Metric,
    /// How.
    pub comparison: Comparison,
    /// The limit: nanoseconds for percentiles, a fraction for `errors` and `rate`.
    pub value: f64,
}

/// A bad `--slo` expression: which part, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--slo `{expression}`: {reason}\n  {expression}\n  {marker}")]
pub struct SloError {
    /// The whole expression.
    pub expression: String,
    /// What is wrong with the marked part.
    pub reason: String,
    /// Carets under the bad part.
    pub marker: String,
}

/// The objectives of a run, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slo {
    /// The limits.
    pub limits: Vec<Limit>,
}

/// One limit judged against a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    /// The limit as written (`p99<2ms`).
    pub limit: String,
    /// The measured value, in the limit's unit (ns, or a fraction); `None` when there was
    /// nothing to measure (no round trip, or `rate` in closed loop).
    pub measured: Option<f64>,
    /// The measured value as people read it (`1.23ms`, `0.05%`).
    pub shown: String,
    /// Whether the limit held. A limit with nothing measured does not hold.
    pub met: bool,
}

impl Slo {
    /// Parses a comma-separated list of limits: `pNN[.N]` (a latency percentile, `p999` is
    /// 99.9) or `max` with `<`, `<=`, `>` or `>=` and a duration (`500us`, `2ms`, `1s`);
    /// `errors` with a percentage; `rate` with a percentage of the offered rate; `late` with a
    /// percentage of sends held back by an unanswered echo.
    pub fn parse(expression: &str) -> Result<Slo, SloError> {
        let mut limits = Vec::new();
        let mut offset = 0;
        for part in expression.split(',') {
            let trimmed = part.trim();
            let start = offset + (part.len() - part.trim_start().len());
            let fail = |reason: String, from: usize, len: usize| SloError {
                expression: expression.to_owned(),
                reason,
                marker: format!("{}{}", " ".repeat(from), "^".repeat(len.max(1))),
            };
            if trimmed.is_empty() {
                return Err(fail("an empty limit".to_owned(), start, 1));
            }
            let Some(op_at) = trimmed.find(['<', '>']) else {
                return Err(fail(
                    "no comparison: write e.g. p99<2ms, errors<0.1% or rate>=99%".to_owned(),
                    start,
                    trimmed.len(),
                ));
            };
            let (name, rest) = trimmed.split_at(op_at);
            let (comparison, value) = if let Some(v) = rest.strip_prefix("<=") {
                (Comparison::AtMost, v)
            } else if let Some(v) = rest.strip_prefix(">=") {
                (Comparison::AtLeast, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Comparison::Below, v)
            } else {
                (Comparison::Above, &rest[1..])
            };
            let name = name.trim();
            let value_at =
                start + trimmed.len() - value.len() + (value.len() - value.trim_start().len());
            let value = value.trim();
            let metric = metric(name).map_err(|reason| fail(reason, start, name.len()))?;
            let number = match metric {
                Metric::Percentile(_) => parse_duration(value).map(|d| d.as_nanos() as f64),
                Metric::Errors | Metric::Rate | Metric::Late => {
                    parse_percent(value).map(|p| p / 100.0)
                }
            }
            .map_err(|reason| fail(reason, value_at, value.len()))?;
            limits.push(Limit {
                text: trimmed.to_owned(),
                metric,
                comparison,
                value: number,
            });
            offset += part.len() + 1;
        }
        Ok(Slo { limits })
    }

    /// Judges every limit against `window`; `offered` is the open-loop rate (round trips
    /// per second), `None` in closed loop.
    pub fn judge(&self, window: Window<'_>, offered: Option<f64>) -> Vec<SloCheck> {
        self.limits
            .iter()
            .map(|limit| {
                let measured = measure(limit.metric, window, offered);
                SloCheck {
                    limit: limit.text.clone(),
                    measured,
                    shown: measured
                        .map_or_else(|| "nothing measured".to_owned(), |v| show(limit.metric, v)),
                    met: measured.is_some_and(|v| limit.comparison.holds(v, limit.value)),
                }
            })
            .collect()
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.limits.iter().map(|l| l.text.as_str()).collect();
        f.write_str(&texts.join(","))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", name(self.metric), self.comparison.symbol())?;
        f.write_str(&show(self.metric, self.value))
    }
}

fn name(metric: Metric) -> String {
    match metric {
        Metric::Percentile(q) if q >= 1.0 => "max".to_owned(),
        Metric::Percentile(q) => format!("p{}", q * 100.0),
        Metric::Errors => "errors".to_owned(),
        Metric::Rate => "rate".to_owned(),
        Metric::Late => "late".to_owned(),
    }
}

fn show(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Percentile(_) => crate::format::duration(value as u64),
        Metric::Errors | Metric::Rate | Metric::Late => format!("{:.3}%", value * 100.0),
    }
}

fn measure(metric: Metric, w: Window<'_>, offered: Option<f64>) -> Option<f64> {
    match metric {
        Metric::Percentile(q) => {
            (!w.latency.is_empty()).then(|| w.latency.value_at_quantile(q) as f64)
        }
        Metric::Errors => {
            let attempted = w.round_trips + w.errors;
            (attempted > 0).then(|| w.errors as f64 / attempted as f64)
        }
        Metric::Rate => {
            let seconds = w.duration.as_secs_f64();
            let offered = offered?;
            (seconds > 0.0 && offered > 0.0).then(|| w.round_trips as f64 / seconds / offered)
        }
        Metric::Late => {
            offered?;
            (w.round_trips > 0).then(|| w.late_sends as f64 / w.round_trips as f64)
        }
    }
}

/// `p50`, `p99`, `p999` (99.9), `p99.99`, `max`, `errors`, `rate`.
fn metric(name: &str) -> Result<Metric, String> {
    match name {
        "errors" => return Ok(Metric::Errors),
        "rate" => return Ok(Metric::Rate),
        "late" => return Ok(Metric::Late),
        "max" => return Ok(Metric::Percentile(1.0)),
        _ => {}
    }
    let unknown = || {
        format!(
            "`{name}` is not a limit; use pNN (p50, p99, p999 = 99.9, p99.99), max, errors, rate or late"
        )
    };
    let digits = name.strip_prefix('p').ok_or_else(unknown)?;
    if digits == "100" || digits.starts_with("100.") {
        return Err(format!(
            "{name}: a percentile is below p100; use max for the largest"
        ));
    }
    // The quantile is written out as a decimal string and parsed once, so p999 is exactly
    // 0.999 (not 99.9 / 100). Without a dot, the digits after the first two are decimals
    // (p999 = 99.9, p9999 = 99.99), as in wrk's and HdrHistogram's names.
    let (whole, decimals) = match digits.split_once('.') {
        Some((whole, decimals)) => (whole, decimals),
        None => digits.split_at(digits.len().min(2)),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 2 || !all_digits(whole) || !all_digits(decimals) {
        return Err(unknown());
    }
    let quantile: f64 = format!("0.{whole:0>2}{decimals}")
        .parse()
        .map_err(|_| unknown())?;
    if quantile <= 0.0 {
        return Err(format!("{name}: a percentile is above p0"));
    }
    Ok(Metric::Percentile(quantile))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration ({err}); write e.g. 500us, 2ms or 1s"))
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}` needs a % sign, e.g. 0.1% or 99%"))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!("`{text}` is not between 0% and 100%"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::error::ErrorKind;
    use crate::latency;

    /// Every form parses to the metric, comparison and value it names.
    #[test]
    fn parses() {
        let slo =
            Slo::parse("p99<2ms, p999 <= 10ms,p99.99<1s,max<5s,errors<0.1%,rate>=99%,p50>1us")
                .unwrap();
        let got: Vec<(Metric, Comparison, f64)> = slo
            .limits
            .iter()
            .map(|l| (l.metric, l.comparison, l.value))
            .collect();
        assert_eq!(
            got,
            [
                (Metric::Percentile(0.99), Comparison::Below, 2e6),
                (Metric::Percentile(0.999), Comparison::AtMost, 1e7),
                (Metric::Percentile(0.9999), Comparison::Below, 1e9),
                (Metric::Percentile(1.0), Comparison::Below, 5e9),
                (Metric::Errors, Comparison::Below, 0.001),
                (Metric::Rate, Comparison::AtLeast, 0.99),
                (Metric::Percentile(0.5), Comparison::Above, 1e3),
            ]
        );
        assert_eq!(slo.limits[1].text, "p999 <= 10ms");
        assert_eq!(
            slo.to_string(),
            "p99<2ms,p999 <= 10ms,p99.99<1s,max<5s,errors<0.1%,rate>=99%,p50>1us"
        );
        assert_eq!(slo.limits[0].to_string(), "p99 < 2.00ms");
    }

    /// A bad part is named and marked with carets under it.
    #[test]
    fn points_at_the_bad_part() {
        let cases = [
            ("p99<2ms,q90<1ms", "`q90` is not a limit", "        ^^^"),
            ("p99<2 parsecs", "is not a duration", "    ^^^^^^^^^"),
            ("errors<0.1", "needs a % sign", "       ^^^"),
            ("rate>=150%", "not between 0% and 100%", "      ^^^^"),
            ("p99", "no comparison", "^^^"),
            ("p99<1ms,,p50<1ms", "an empty limit", "        ^"),
            ("p100<1s", "use max for the largest", "^^^^"),
            ("p0<1s", "above p0", "^^"),
            ("p9x<1s", "is not a limit", "^^^"),
        ];
        for (expression, reason, marker) in cases {
            let err = Slo::parse(expression).unwrap_err();
            assert!(err.reason.contains(reason), "{expression}: {}", err.reason);
            assert_eq!(err.marker, marker, "{expression}");
            assert!(
                err.to_string()
                    .starts_with(&format!("--slo `{expression}`"))
            );
        }
    }

    /// Judged against a measurement: percentiles of the corrected histogram in open loop,
    /// errors over attempts, achieved over offered; nothing measured never holds.
    #[test]
    fn judges() {
        let mut m = Measurement::new(SystemTime::UNIX_EPOCH, true);
        m.measured = Duration::from_secs(2);
        for micros in 1..=100u64 {
            m.counts.round_trips += 1;
            latency::record(&mut m.latencies.round_trip, micros * 1_000);
            latency::record(m.latencies.corrected.as_mut().unwrap(), micros * 1_000_000);
        }
        m.errors.record(ErrorKind::RoundTripTimeout, None, "late");
        m.counts.late_sends = 2;
        let slo = Slo::parse("p50<600us,p99<2ms,errors<1%,rate>=99%,late<=1%,late<=2%").unwrap();
        let checks = slo.judge(Window::from(&m), Some(50.0));
        let met: Vec<bool> = checks.iter().map(|c| c.met).collect();
        // Corrected p50 is ~50 ms, not the uncorrected 50 µs; 1 error of 101 is 0.99%;
        // 100 round trips in 2 s of 50/s offered is exactly 100%; 2 held of 100 is 2%.
        assert_eq!(met, [false, false, true, true, false, true]);
        assert!(checks[0].shown.ends_with("ms"), "{:?}", checks[0]);
        assert_eq!(checks[2].shown, "0.990%");
        assert_eq!(checks[4].shown, "2.000%");
        let empty = Measurement::new(SystemTime::UNIX_EPOCH, false);
        let closed = slo.judge(Window::from(&empty), None);
        assert!(closed.iter().all(|c| !c.met && c.measured.is_none()));
        assert_eq!(closed[3].shown, "nothing measured");
    }
}
