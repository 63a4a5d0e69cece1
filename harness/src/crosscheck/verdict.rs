//! The crosscheck's judgement: with too much CPU steal it refuses to judge; otherwise
//! echo-client's HTTP throughput must be within [`TOLERANCE`] of `wrk -t1`'s on the same
//! server, and echo-client must not be saturated where wrk is not.

use echobench_core::thresholds::{CLIENT_SATURATED, HIGH_STEAL_PERCENT};

use super::Row;
use super::tools::Group;
use crate::stats;

/// Largest allowed disagreement between echo-client and wrk.
pub const TOLERANCE: f64 = 0.15;

/// The crosscheck's judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// echo-client agrees with wrk.
    Agree(String),
    /// It does not: our measurement may be wrong.
    Disagree(String),
    /// The machine was too noisy to judge.
    TooNoisy(String),
}

pub(crate) fn medians(rows: &[Row], name: &str, group: Group) -> Option<(f64, f64)> {
    let ok: Vec<&Row> = rows
        .iter()
        .filter(|r| r.tool.name == name && r.tool.group == group && r.measured.is_ok())
        .collect();
    let rps = stats::spread(
        &ok.iter()
            .filter_map(|r| r.measured.as_ref().ok().map(|m| m.rps))
            .collect::<Vec<_>>(),
    )?;
    let util = stats::spread(&ok.iter().map(|r| r.utilization()).collect::<Vec<_>>())?;
    Some((rps.median, util.median))
}

/// Applies the rules: steal first, then agreement with wrk, then saturation.
pub fn judge(rows: &[Row], steal: Option<f64>) -> Verdict {
    if let Some(steal) = steal.filter(|s| *s > HIGH_STEAL_PERCENT) {
        return Verdict::TooNoisy(format!(
            "CPU steal was {steal:.1}% (over {HIGH_STEAL_PERCENT}%): the machine is too noisy to judge; run again later"
        ));
    }
    let (Some((ours, our_util)), Some((wrk, wrk_util))) = (
        medians(rows, "echo-client", Group::Http),
        medians(rows, "wrk -t1", Group::Http),
    ) else {
        return Verdict::Disagree("echo-client and wrk -t1 must both complete HTTP runs to be compared (is wrk installed?)".to_owned());
    };
    let ratio = ours / wrk;
    if (ratio - 1.0).abs() > TOLERANCE {
        return Verdict::Disagree(format!(
            "echo-client measured {ours:.0} rt/s where wrk measured {wrk:.0} rt/s on the same server ({:+.1}%, tolerance ±{:.0}%): one of the two measurements is wrong",
            (ratio - 1.0) * 100.0,
            TOLERANCE * 100.0
        ));
    }
    if our_util > CLIENT_SATURATED && wrk_util <= CLIENT_SATURATED {
        return Verdict::Disagree(format!(
            "echo-client was saturated ({:.0}% CPU) where wrk was not ({:.0}%): our client would be the bottleneck",
            our_util * 100.0,
            wrk_util * 100.0
        ));
    }
    Verdict::Agree(format!(
        "echo-client agrees with wrk: {ours:.0} vs {wrk:.0} rt/s ({:+.1}%), CPU use {:.0}% vs {:.0}%",
        (ratio - 1.0) * 100.0,
        our_util * 100.0,
        wrk_util * 100.0
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crosscheck::tools::{self, Measured, Tool};

    fn row(name: &str, rps: f64, cpu_ms: u64) -> Row {
        Row {
            round: 1,
            tool: Tool {
                name: name.to_owned(),
                group: Group::Http,
                argv: Vec::new(),
                output: tools::Output::JsonLine,
            },
            measured: Ok(Measured {
                round_trips: rps as u64,
                rps,
                p50_us: None,
                p99_us: None,
                errors: 0,
            }),
            cpu: Duration::from_millis(cpu_ms),
            wall: Duration::from_secs(1),
            steal: Some(0.0),
        }
    }

    /// The gate: within 15% and no one-sided saturation passes; otherwise it says why.
    #[test]
    fn judgement() {
        let agree = [
            row("echo-client", 100_000.0, 800),
            row("wrk -t1", 95_000.0, 950),
        ];
        assert!(matches!(judge(&agree, Some(1.0)), Verdict::Agree(_)));
        let apart = [
            row("echo-client", 70_000.0, 800),
            row("wrk -t1", 100_000.0, 950),
        ];
        match judge(&apart, Some(1.0)) {
            Verdict::Disagree(text) => assert!(text.contains("-30.0%"), "{text}"),
            other => panic!("{other:?}"),
        }
        let saturated = [
            row("echo-client", 100_000.0, 990),
            row("wrk -t1", 100_000.0, 500),
        ];
        match judge(&saturated, None) {
            Verdict::Disagree(text) => assert!(text.contains("saturated (99% CPU)"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judge(&agree, Some(7.5)), Verdict::TooNoisy(_)));
        assert!(matches!(
            judge(&[row("echo-client", 1.0, 1)], None),
            Verdict::Disagree(_)
        ));
    }
}
