//! The crosscheck's judgement: with too much CPU steal it refuses to judge; otherwise
//! echo-client's HTTP throughput must be within [`TOLERANCE`] of `wrk -t1`'s on the same
//! server, over plaintext and (when that group ran) over TLS, and echo-client must not be
//! saturated where wrk is not.

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

/// A tool's medians over its completed runs in a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Medians {
    /// Round trips per second.
    pub(crate) rps: f64,
    /// CPU use of its one core.
    pub(crate) utilization: f64,
    /// The server's CPU microseconds per round trip the tool counted.
    pub(crate) server_us: Option<f64>,
}

pub(crate) fn medians(rows: &[Row], name: &str, group: Group) -> Option<Medians> {
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
    let server = stats::spread(
        &ok.iter()
            .filter_map(|r| r.server_cpu_us_per_round_trip())
            .collect::<Vec<_>>(),
    );
    Some(Medians {
        rps: rps.median,
        utilization: util.median,
        server_us: server.map(|s| s.median),
    })
}

/// Applies the rules: steal first, then, for HTTP and for HTTPS (when it ran), agreement with
/// wrk, then saturation.
pub fn judge(rows: &[Row], steal: Option<f64>) -> Verdict {
    if let Some(steal) = steal.filter(|s| *s > HIGH_STEAL_PERCENT) {
        return Verdict::TooNoisy(format!(
            "CPU steal was {steal:.1}% (over {HIGH_STEAL_PERCENT}%): the machine is too noisy to judge; run again later"
        ));
    }
    let judged: Vec<Group> = [Group::Http, Group::Https]
        .into_iter()
        .filter(|g| rows.iter().any(|r| r.tool.group == *g))
        .collect();
    if judged.is_empty() {
        return Verdict::Disagree(
            "echo-client and wrk -t1 must both complete HTTP runs to be compared (is wrk installed?)"
                .to_owned(),
        );
    }
    let mut agreed = Vec::new();
    for group in judged {
        match judge_group(rows, group) {
            Ok(text) => agreed.push(text),
            Err(text) => return Verdict::Disagree(text),
        }
    }
    Verdict::Agree(agreed.join("; "))
}

/// The gate for one HTTP group: `Ok` with the agreement, `Err` with the disagreement.
///
/// echo-client measuring more than wrk by over the tolerance is accepted in one case only:
/// wrk was at its CPU limit (so it measured itself, not the server; over TLS OpenSSL costs wrk
/// more per round trip than rustls costs echo-client), and the server's CPU per round trip
/// under echo-client is within the tolerance of its CPU per round trip under wrk — the extra
/// round trips echo-client counted cost the server what wrk's did, so they happened.
fn judge_group(rows: &[Row], group: Group) -> Result<String, String> {
    let what = group.name().to_uppercase();
    let (Some(ours), Some(wrk)) = (
        medians(rows, "echo-client", group),
        medians(rows, "wrk -t1", group),
    ) else {
        return Err(format!(
            "{what}: echo-client and wrk -t1 must both complete runs to be compared (is wrk installed?)"
        ));
    };
    let ratio = ours.rps / wrk.rps;
    let versus = format!(
        "echo-client measured {:.0} rt/s where wrk measured {:.0} rt/s on the same server ({:+.1}%, tolerance ±{:.0}%)",
        ours.rps,
        wrk.rps,
        (ratio - 1.0) * 100.0,
        TOLERANCE * 100.0
    );
    let cpu = format!(
        "CPU use {:.0}% vs {:.0}%",
        ours.utilization * 100.0,
        wrk.utilization * 100.0
    );
    if ratio < 1.0 - TOLERANCE {
        return Err(format!(
            "{what}: {versus}: echo-client is the bottleneck or one of the two measurements is wrong"
        ));
    }
    let mut wrk_bound = None;
    if ratio > 1.0 + TOLERANCE {
        if wrk.utilization <= CLIENT_SATURATED {
            return Err(format!(
                "{what}: {versus}, and wrk had CPU to spare ({cpu}): one of the two measurements is wrong"
            ));
        }
        let (Some(ours_us), Some(wrk_us)) = (ours.server_us, wrk.server_us) else {
            return Err(format!(
                "{what}: {versus}; wrk was saturated, but the server's CPU was not measured, so echo-client's extra round trips cannot be confirmed"
            ));
        };
        if ours_us < wrk_us * (1.0 - TOLERANCE) {
            return Err(format!(
                "{what}: {versus}; the server's CPU per round trip was {ours_us:.2} µs under echo-client and {wrk_us:.2} µs under wrk ({:+.1}%): echo-client counts round trips the server did not do",
                (ours_us / wrk_us - 1.0) * 100.0
            ));
        }
        wrk_bound = Some(format!(
            " wrk was the bottleneck ({:.0}% of its core), and the server's CPU per round trip confirms echo-client's count ({ours_us:.2} vs {wrk_us:.2} µs)",
            wrk.utilization * 100.0
        ));
    }
    if ours.utilization > CLIENT_SATURATED && wrk.utilization <= CLIENT_SATURATED {
        return Err(format!(
            "{what}: echo-client was saturated ({:.0}% CPU) where wrk was not ({:.0}%): our client would be the bottleneck",
            ours.utilization * 100.0,
            wrk.utilization * 100.0
        ));
    }
    Ok(match wrk_bound {
        Some(why) => format!("{what}: {versus}:{why}"),
        None => format!(
            "{what}: echo-client agrees with wrk: {:.0} vs {:.0} rt/s ({:+.1}%), {cpu}",
            ours.rps,
            wrk.rps,
            (ratio - 1.0) * 100.0
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crosscheck::tools::{self, Measured, Tool};

    fn row(name: &str, rps: f64, cpu_ms: u64) -> Row {
        row_in(Group::Http, name, rps, cpu_ms)
    }

    /// A run of one second with `server_us` of server CPU per round trip.
    fn costed(group: Group, name: &str, rps: f64, cpu_ms: u64, server_us: f64) -> Row {
        Row {
            server_cpu: Duration::from_secs_f64(rps * server_us / 1e6),
            ..row_in(group, name, rps, cpu_ms)
        }
    }

    fn row_in(group: Group, name: &str, rps: f64, cpu_ms: u64) -> Row {
        Row {
            round: 1,
            tool: Tool {
                name: name.to_owned(),
                group,
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
            server_cpu: Duration::ZERO,
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
        // HTTPS, when it ran, is held to the same gate.
        let mut both = agree.to_vec();
        both.push(row_in(Group::Https, "echo-client", 50_000.0, 800));
        both.push(row_in(Group::Https, "wrk -t1", 48_000.0, 900));
        match judge(&both, Some(1.0)) {
            Verdict::Agree(text) => {
                assert!(
                    text.starts_with("HTTP: ") && text.contains("; HTTPS: "),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        both.push(row_in(Group::Https, "wrk -t1", 80_000.0, 900));
        both.push(row_in(Group::Https, "wrk -t1", 80_000.0, 900));
        match judge(&both, Some(1.0)) {
            Verdict::Disagree(text) => assert!(
                text.starts_with("HTTPS: echo-client measured 50000"),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        let https_alone = [row_in(Group::Https, "echo-client", 50_000.0, 800)];
        match judge(&https_alone, None) {
            Verdict::Disagree(text) => assert!(text.starts_with("HTTPS: "), "{text}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge(&[row("echo-client", 1.0, 1)], None),
            Verdict::Disagree(_)
        ));
    }

    /// echo-client measuring over 15% more than wrk passes only when wrk was saturated and
    /// the server's CPU per round trip confirms the extra round trips.
    #[test]
    fn more_than_wrk_needs_a_saturated_wrk_and_the_server_cost() {
        // (wrk's CPU ms in its 1 s run, server µs/rt under echo-client, under wrk, expected)
        let cases: [(u64, f64, f64, Result<&str, &str>); 4] = [
            (
                800,
                9.0,
                9.0,
                Err("wrk had CPU to spare (CPU use 85% vs 80%)"),
            ),
            (990, 0.0, 0.0, Err("the server's CPU was not measured")),
            (
                990,
                7.0,
                9.0,
                Err("7.00 µs under echo-client and 9.00 µs under wrk (-22.2%)"),
            ),
            (
                990,
                8.8,
                9.0,
                Ok("wrk was the bottleneck (99% of its core)"),
            ),
        ];
        for (wrk_cpu, ours_us, wrk_us, expected) in cases {
            let rows = [
                costed(Group::Https, "echo-client", 113_000.0, 850, ours_us),
                costed(Group::Https, "wrk -t1", 90_000.0, wrk_cpu, wrk_us),
            ];
            match (judge(&rows, Some(0.1)), expected) {
                (Verdict::Agree(text), Ok(needle)) | (Verdict::Disagree(text), Err(needle)) => {
                    assert!(text.contains(needle), "{text}");
                    assert!(text.contains("(+25.6%, tolerance ±15%)"), "{text}");
                }
                (got, _) => panic!("{wrk_cpu} {ours_us} {wrk_us}: {got:?}"),
            }
        }
    }
}
