//! One test split over workers (`--shard I/N`, `--processes P`, many hosts): each worker runs
//! its share of the connections, the rate, `-n` and `--connect-rate`, and the shares of one
//! test add up to exactly that test (as k6's execution segments do). A shard's config carries
//! the whole test's load beside its own, so reports of the shards can be merged back into the
//! report of the test ([`merge`]) and reports of different tests are refused.
//!
//! Connections split by segments: shard `i` of `n` takes `floor(c*i/n) - floor(c*(i-1)/n)`.
//! The rate and the connect rate follow the connections (every connection keeps the
//! whole test's per-connection rate), and `-n` splits in whole connections' worth as it does
//! over threads ([`split_total`]).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::measurement::Measurement;
use crate::report::{Context, Report, ReportError, Tool};
use crate::stages::{Stage, Stages};

/// `--shard I/N`: which share of the test this worker runs (1-based, as `jest --shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// This worker's place, 1 to `count`.
    pub index: u32,
    /// How many workers the test is split over.
    pub count: u32,
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<ShardSpec, String> {
        let usage = || {
            format!(
                "`{text}` is not I/N, this worker's place I (1 to N) out of N workers, e.g. 2/4"
            )
        };
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index == 0 || index > count {
            return Err(usage());
        }
        Ok(ShardSpec { index, count })
    }
}

/// The load a test is made of, which its shards split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// `-c`.
    pub connections: u32,
    /// `--rate`.
    pub rate: Option<f64>,
    /// `-n`.
    pub total: Option<u64>,
    /// `--connect-rate`.
    pub connect_rate: Option<f64>,
    /// `--stages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Stages>,
}

impl Load {
    fn of(config: &Config) -> Load {
        Load {
            connections: config.connections,
            rate: config.rate,
            total: config.total,
            connect_rate: config.connect_rate,
            stages: config.stages.clone(),
        }
    }
}

/// What a shard's config says about the test it is part of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker's place, 1 to `count`.
    pub index: u32,
    /// How many workers the test is split over.
    pub count: u32,
    /// The whole test's load; the config's own fields are this worker's share of it.
    pub test: Load,
}

/// Connections of shard `index` (1-based) of `count`: segment `[(i-1)/n, i/n)` of `c`.
fn segment(c: u64, index: u32, count: u32) -> u64 {
    let end = |i: u32| c * u64::from(i) / u64::from(count);
    end(index) - end(index - 1)
}

/// Splits `total` round trips over groups with `clients[i]` connections each: in proportion
/// to their connections, in whole connections' worth (`roundtrips` each) when connections are
/// bounded, the last group taking the remainder. The shares add up to `total` exactly. Used
/// for threads within a process and for shards of a test alike.
pub fn split_total(total: u64, roundtrips: u64, clients: &[usize]) -> Vec<u64> {
    let unit = roundtrips.max(1);
    let units = total.div_ceil(unit);
    let connections: u64 = clients.iter().map(|&c| c as u64).sum::<u64>().max(1);
    let mut assigned_units = 0;
    let mut assigned = 0;
    clients
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let share = if i + 1 == clients.len() {
                units - assigned_units
            } else {
                units * c as u64 / connections
            };
            assigned_units += share;
            let tickets = (share * unit).min(total - assigned);
            assigned += tickets;
            tickets
        })
        .collect()
}

impl Config {
    /// This worker's share of the test `self` describes, for `--shard`: the config it runs,
    /// with the whole test's load kept in [`Config::shard`]. The whole test is validated
    /// first; what cannot be split is refused, naming the flag.
    pub fn shard(&self, spec: ShardSpec) -> Result<Config, ConfigError> {
        let invalid = |text: String| Err(ConfigError::Invalid(text));
        self.validate()?;
        if self.shard.is_some() {
            return invalid("this config is already a shard of a test".into());
        }
        if self.broadcast.is_some() {
            return invalid(format!(
                "--shard {spec} cannot split --workload broadcast: a shard's subscribers receive the other shards' messages, which its exact counts cannot account for"
            ));
        }
        if self.connections < spec.count {
            return invalid(format!(
                "-c {} cannot be split over {} shards: each needs at least one connection",
                self.connections, spec.count
            ));
        }
        let whole = u64::from(self.connections);
        let shares: Vec<usize> = (1..=spec.count)
            .map(|i| segment(whole, i, spec.count) as usize)
            .collect();
        let mine = shares[spec.index as usize - 1];
        let fraction = mine as f64 / whole as f64;
        let total = self
            .total
            .map(|n| split_total(n, self.roundtrips, &shares)[spec.index as usize - 1]);
        // Stages split level by level: a rate in proportion to the connections, connections
        // by segments of each level (so at every stage's ends the shards' connections add up
        // to the test's exactly; inside a ramp each shard rounds its own share).
        let stages = self.resolved_stages().map(|whole| {
            let share = |level: f64| match self.rate {
                Some(_) => level * fraction,
                None => segment(level as u64, spec.index, spec.count) as f64,
            };
            let mine: Vec<Stage> = whole
                .iter()
                .map(|s| Stage {
                    duration: s.duration,
                    from: share(s.from),
                    to: share(s.to),
                })
                .collect();
            Stages::of_resolved(&mine)
        });
        if total == Some(0) {
            return invalid(format!(
                "-n {} cannot be split over {} shards with -r {}: shard {spec} would have no round trips",
                self.total.unwrap_or_default(),
                spec.count,
                self.roundtrips
            ));
        }
        Ok(Config {
            connections: u32::try_from(mine).unwrap_or(u32::MAX),
            rate: self.rate.map(|r| r * fraction),
            total,
            connect_rate: self.connect_rate.map(|r| r * fraction),
            stages,
            shard: Some(Shard {
                index: spec.index,
                count: spec.count,
                test: Load::of(self),
            }),
            ..self.clone()
        })
    }

    /// The whole test a shard's config is part of (itself when it is not a shard), with
    /// `threads` left as they are.
    pub fn whole_test(&self) -> Config {
        match &self.shard {
            None => self.clone(),
            Some(shard) => Config {
                connections: shard.test.connections,
                rate: shard.test.rate,
                total: shard.test.total,
                connect_rate: shard.test.connect_rate,
                stages: shard.test.stages.clone(),
                shard: None,
                ..self.clone()
            },
        }
    }
}

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// A report cannot be read.
    #[error("{name}: {source}")]
    Unreadable {
        /// Which report.
        name: String,
        /// Why.
        source: ReportError,
    },
    /// The reports are not the shards of one test.
    #[error("{0}")]
    Mismatch(String),
}

/// Each worker's own figures, kept in a merged report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerOutcome {
    /// Where the report came from (its file, or the host that wrote it).
    pub name: String,
    /// Its shard, `I/N`.
    pub shard: String,
    /// Its window's start, RFC 3339.
    pub started_at: String,
    /// Its window's length, seconds.
    pub measured_s: f64,
    /// With `--start-at`: how late its window started (negative: early), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_offset_s: Option<f64>,
    /// Its counts and rates.
    pub summary: crate::report::Summary,
    /// Its own CPU use and its machine's steal.
    pub client: crate::report::ClientLoad,
    /// Its warnings.
    pub flags: crate::report::Flags,
}

/// The workers a merged report was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workers {
    /// How many.
    pub count: u32,
    /// Each one's own figures, in shard order.
    pub each: Vec<WorkerOutcome>,
}

/// The config with what may differ between the shards of one test taken out: the shard
/// itself and the threads each worker chose for its machine.
fn comparable(config: &Config) -> serde_json::Value {
    let whole = Config {
        threads: 0,
        ..config.whole_test()
    };
    serde_json::to_value(whole).unwrap_or_default()
}

/// The first top-level field in which two configs differ, with both values.
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find_map(|key| {
        let (x, y) = (a.get(key), b.get(key));
        (x != y).then(|| {
            let show =
                |v: Option<&serde_json::Value>| v.map_or("nothing".to_owned(), ToString::to_string);
            (key.clone(), show(x), show(y))
        })
    })
}

/// Merges the reports of the shards of one test (`(name, report)`, in any order) into the
/// report of that test: counts, errors and histograms exactly (see [`Measurement::merge`]),
/// the timeline aligned on wall-clock seconds, every objective judged again over the whole,
/// each worker's own figures kept in `workers`. Refused, naming the report and the field:
/// reports of different configurations, a report that is not a shard, and shards missing
/// or given twice. `one_machine`: the workers ran on this machine (`--processes`), so the
/// CPUs they could use at most are no more than the CPUs they were allowed between them.
pub fn merge(reports: &[(String, Report)], one_machine: bool) -> Result<Report, MergeError> {
    let (first_name, first) = reports.first().ok_or(MergeError::Empty)?;
    let mismatch = |text: String| Err(MergeError::Mismatch(text));
    let Some(count) = first.config.shard.as_ref().map(|s| s.count) else {
        return mismatch(format!(
            "{first_name} is not a shard of a test (it was not run with --shard I/N)"
        ));
    };
    let reference = comparable(&first.config);
    let mut seen: Vec<Option<&str>> = vec![None; count as usize];
    for (name, report) in reports {
        let Some(shard) = &report.config.shard else {
            return mismatch(format!(
                "{name} is not a shard of a test (it was not run with --shard I/N)"
            ));
        };
        if shard.count != count {
            return mismatch(format!(
                "{name} is shard {}/{} but {first_name} is one of {count}: they are not the same test",
                shard.index, shard.count
            ));
        }
        if let Some((field, ours, theirs)) =
            first_difference(&reference, &comparable(&report.config))
        {
            return mismatch(format!(
                "{name} and {first_name} are not shards of one test: config.{field} is {theirs} in {name} but {ours} in {first_name}"
            ));
        }
        if report.target.url != first.target.url {
            return mismatch(format!(
                "{name} loaded {} but {first_name} loaded {}",
                report.target.url, first.target.url
            ));
        }
        let slot = seen.get_mut(shard.index as usize - 1).ok_or_else(|| {
            MergeError::Mismatch(format!(
                "{name} has shard {}/{count}, which does not exist",
                shard.index
            ))
        })?;
        if let Some(other) = slot {
            return mismatch(format!(
                "{name} and {other} are both shard {}/{count}",
                shard.index
            ));
        }
        *slot = Some(name);
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return mismatch(format!(
            "shard {} missing: the reports given cover only part of the test",
            missing.join(", ")
        ));
    }

    let mut ordered: Vec<&(String, Report)> = reports.iter().collect();
    ordered.sort_by_key(|(_, r)| r.config.shard.as_ref().map_or(0, |s| s.index));
    let mut merged: Option<Measurement> = None;
    let mut threads = 0;
    for (name, report) in &ordered {
        let m = report
            .measurement()
            .map_err(|source| MergeError::Unreadable {
                name: name.clone(),
                source,
            })?;
        threads += report.config.threads;
        match &mut merged {
            None => merged = Some(m),
            Some(into) => into.merge(&m),
        }
    }
    let mut merged = merged.ok_or(MergeError::Empty)?;
    if one_machine && !merged.cpu.allowed_cpus.is_empty() {
        merged.cpu.capacity_cpus = merged
            .cpu
            .capacity_cpus
            .min(merged.cpu.allowed_cpus.len() as f64);
    }
    let mut report = Report::derive(
        Context {
            tool: Tool::this(),
            config: Config {
                threads,
                ..first.config.whole_test()
            },
            target: first.target.clone(),
        },
        &merged,
    );
    report.workers = Some(Workers {
        count,
        each: ordered
            .iter()
            .map(|(name, r)| WorkerOutcome {
                name: name.clone(),
                shard: r
                    .config
                    .shard
                    .as_ref()
                    .map_or_else(String::new, |s| format!("{}/{}", s.index, s.count)),
                started_at: r.started_at.clone(),
                measured_s: r.measured_s,
                start_offset_s: r.start_offset_s,
                summary: r.summary.clone(),
                client: r.client.clone(),
                flags: r.flags,
            })
            .collect(),
    });
    Ok(report)
}

/// `started_at - at` in seconds, negative when it started before `at`.
pub fn offset_s(started_at: SystemTime, at: SystemTime) -> f64 {
    match started_at.duration_since(at) {
        Ok(late) => late.as_secs_f64(),
        Err(early) => -early.duration().as_secs_f64(),
    }
}

/// How far ahead `--start-at` may be: more is taken for a mistake.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::latency;
    use crate::measurement::Second;
    use crate::protocol::Protocol;
    use crate::report::TargetInfo;
    use proptest::prelude::*;

    fn spec(index: u32, count: u32) -> ShardSpec {
        ShardSpec { index, count }
    }

    /// `I/N` with 1 <= I <= N; anything else is refused with the form to use.
    #[test]
    fn specs() {
        assert_eq!("2/4".parse(), Ok(spec(2, 4)));
        assert_eq!(" 1 / 1 ".parse(), Ok(spec(1, 1)));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/2", "1/2/3", ""] {
            let err = bad.parse::<ShardSpec>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        assert_eq!(spec(3, 8).to_string(), "3/8");
    }

    /// The shards of a test add up to exactly that test: connections, -n (in whole
    /// connections' worth with -r), the rate and the connect rate.
    #[test]
    fn shares_add_up() {
        /// (connections, roundtrips, total, rate, shards)
        type Case = (u32, u64, Option<u64>, Option<f64>, u32);
        let cases: [Case; 7] = [
            (4, 0, None, Some(1000.0), 2),
            (5, 0, None, Some(1000.0), 2),
            (10, 0, Some(1001), None, 3),
            (10, 10, Some(1000), None, 3),
            (7, 3, Some(100), None, 7),
            (100_000, 0, None, Some(100_000.0), 4),
            (3, 0, None, Some(0.5), 3),
        ];
        for (connections, roundtrips, total, rate, count) in cases {
            let test = Config {
                connections,
                roundtrips,
                total,
                rate,
                connect_rate: Some(50_000.0),
                warmup: if total.is_some() {
                    Duration::ZERO
                } else {
                    Duration::from_secs(1)
                },
                ..Config::new("tcp://127.0.0.1:1")
            };
            let shards: Vec<Config> = (1..=count)
                .map(|i| test.shard(spec(i, count)).unwrap())
                .collect();
            let label =
                format!("c={connections} r={roundtrips} n={total:?} rate={rate:?} /{count}");
            assert_eq!(
                shards.iter().map(|s| s.connections).sum::<u32>(),
                connections,
                "{label}"
            );
            assert!(shards.iter().all(|s| s.connections >= 1), "{label}");
            assert_eq!(
                shards.iter().map(|s| s.total).sum::<Option<u64>>(),
                total,
                "{label}"
            );
            let near = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
            if let Some(rate) = rate {
                let sum: f64 = shards.iter().filter_map(|s| s.rate).sum();
                assert!(near(sum, rate), "{label}: rates add to {sum}");
                for s in &shards {
                    let per_connection = s.rate.unwrap() / f64::from(s.connections);
                    assert!(
                        near(per_connection, rate / f64::from(connections)),
                        "{label}"
                    );
                }
            }
            let sum: f64 = shards.iter().filter_map(|s| s.connect_rate).sum();
            assert!(near(sum, 50_000.0), "{label}: connect rates add to {sum}");
            for s in &shards {
                assert_eq!(s.validate(), Ok(()), "{label}");
                assert_eq!(s.whole_test(), test, "{label}");
            }
        }
    }

    /// Stages split level by level: at every stage's ends the shards' rates add up to the
    /// test's (in proportion to their connections) and their connections exactly; each
    /// shard's stages last as long as the test's, and the whole test is kept.
    #[test]
    fn stages_split_level_by_level() {
        let base = Config::new("ws://127.0.0.1:1/ws");
        let cases = [
            // (connections, rate, stages, shards)
            (10, Some(100.0), "2s:1000,3s:=500,1s:x2*2,1500ms:0", 3),
            (7, Some(33.3), "1s:+10*3,2s:7", 2),
            (4, None, "2s:10,2s:=3,1s:+2*2,3s:1", 4),
            (100, None, "1s:1000,1s:=999", 7),
        ];
        for (connections, rate, stages, count) in cases {
            let test = Config {
                connections,
                rate,
                stages: Some(stages.parse().unwrap()),
                ..base.clone()
            };
            let test = Config {
                duration: test.stages.as_ref().unwrap().duration(),
                ..test
            };
            let whole = test.resolved_stages().unwrap();
            let shards: Vec<Vec<Stage>> = (1..=count)
                .map(|i| {
                    let shard = test.shard(spec(i, count)).unwrap();
                    assert_eq!(shard.validate(), Ok(()), "{stages} {i}/{count}");
                    assert_eq!(shard.whole_test(), test, "{stages} {i}/{count}");
                    assert_eq!(shard.duration, test.duration, "{stages} {i}/{count}");
                    shard.resolved_stages().unwrap()
                })
                .collect();
            for (k, stage) in whole.iter().enumerate() {
                let sum = |end: fn(&Stage) -> f64| shards.iter().map(|s| end(&s[k])).sum::<f64>();
                for (got, want) in [(sum(|s| s.from), stage.from), (sum(|s| s.to), stage.to)] {
                    match rate {
                        Some(_) => assert!(
                            (got - want).abs() <= 1e-9 * want.max(1.0),
                            "{stages} stage {k}: {got} != {want}"
                        ),
                        None => assert_eq!(got, want, "{stages} stage {k}"),
                    }
                }
                assert!(
                    shards.iter().all(|s| s[k].duration == stage.duration),
                    "{stages}"
                );
            }
        }
    }

    /// What cannot be split is refused, naming the flag.
    #[test]
    fn unsplittable() {
        let base = Config::new("ws://127.0.0.1:1/ws");
        let cases: [(Config, ShardSpec, &str); 3] = [
            (
                Config {
                    connections: 3,
                    ..base.clone()
                },
                spec(1, 4),
                "-c 3 cannot be split over 4",
            ),
            (
                Config {
                    broadcast: Some(crate::broadcast::BroadcastConfig { publishers: 1 }),
                    url: "ws://127.0.0.1:1/broadcast".into(),
                    rate: Some(10.0),
                    ..base.clone()
                },
                spec(1, 2),
                "--workload broadcast",
            ),
            (
                Config {
                    total: Some(10),
                    roundtrips: 10,
                    connections: 4,
                    warmup: Duration::ZERO,
                    ..base
                },
                spec(1, 2),
                "shard 1/2 would have no round trips",
            ),
        ];
        for (config, spec, expected) in cases {
            let err = config.shard(spec).unwrap_err().to_string();
            assert!(err.contains(expected), "{spec}: {err}");
        }
    }

    const START: u64 = 1_790_000_000;

    fn at(second: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(START + second)
    }

    /// One worker's samples: `(second, nanos, failed)`.
    type Samples = Vec<(u32, u64, bool)>;

    /// A measurement of `samples` over a 3-second window starting at `start`.
    fn measure(start: u64, samples: &[(u32, u64, bool)], open_loop: bool) -> Measurement {
        let mut m = Measurement::new(at(start), open_loop);
        m.measured = Duration::from_secs(3);
        m.cpu.threads = 1;
        m.cpu.capacity_cpus = 1.0;
        m.cpu.allowed_cpus = vec![1];
        for &(index, nanos, failed) in samples {
            let mut second = Second::new(index, open_loop);
            second.duration = Duration::from_secs(1);
            if failed {
                m.errors
                    .record(ErrorKind::RoundTripTimeout, None, "no echo");
                second.errors = 1;
            } else {
                m.counts.round_trips += 1;
                m.counts.bytes_sent += 32;
                latency::record(&mut m.latencies.round_trip, nanos);
                latency::record(&mut second.round_trip, nanos);
                if let (Some(all), Some(its)) = (&mut m.latencies.corrected, &mut second.corrected)
                {
                    latency::record(all, nanos * 2);
                    latency::record(its, nanos * 2);
                }
                second.round_trips = 1;
            }
            second.offered = open_loop.then_some(1.0);
            m.add_second(&second);
        }
        m
    }

    fn context(config: Config) -> Context {
        Context {
            tool: Tool::this(),
            config,
            target: TargetInfo {
                url: "tcp://127.0.0.1:1".into(),
                protocol: Protocol::Tcp,
                addr: "127.0.0.1:1".into(),
            },
        }
    }

    fn test_config(open_loop: bool) -> Config {
        Config {
            connections: 12,
            rate: open_loop.then_some(600.0),
            slo: Some(crate::slo::Slo::parse("p99<=1ms,errors<=1%").unwrap()),
            ..Config::new("tcp://127.0.0.1:1")
        }
    }

    /// The shards' reports as `merge` reads them: derived, written as JSON and read back.
    fn shard_reports(workers: &[Samples], open_loop: bool) -> Vec<(String, Report)> {
        let test = test_config(open_loop);
        let count = u32::try_from(workers.len()).unwrap();
        workers
            .iter()
            .enumerate()
            .map(|(i, samples)| {
                let config = test
                    .shard(spec(u32::try_from(i).unwrap() + 1, count))
                    .unwrap();
                let report = Report::derive(
                    context(Config {
                        threads: 1,
                        ..config
                    }),
                    &measure(0, samples, open_loop),
                );
                let text = report.to_json().unwrap();
                (format!("w{i}.json"), Report::from_json(&text).unwrap())
            })
            .collect()
    }

    proptest! {
        // Each case derives, writes and reads a report per worker: 64 cases keep it to seconds.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Merged report == report of the union: every count, histogram, percentile, second
        /// and objective of the merged shards is what one worker holding all their samples
        /// would have reported.
        #[test]
        fn merged_is_the_union(
            workers in prop::collection::vec(
                prop::collection::vec((0u32..3, 1_000u64..50_000_000, prop::bool::weighted(0.05)), 0..60),
                1..5,
            ),
            open_loop in any::<bool>(),
        ) {
            let reports = shard_reports(&workers, open_loop);
            let mut merged = merge(&reports, false).unwrap();
            let workers_kept = merged.workers.take().unwrap();
            prop_assert_eq!(workers_kept.count as usize, workers.len());
            prop_assert_eq!(workers_kept.each.len(), workers.len());

            let all: Samples = workers.iter().flatten().copied().collect();
            let mut union = measure(0, &all, open_loop);
            union.cpu.threads = workers.len();
            union.cpu.capacity_cpus = workers.len() as f64;
            let union = Report::derive(
                context(Config { threads: workers.len(), ..test_config(open_loop) }),
                &union,
            );
            prop_assert_eq!(merged, union);
        }
    }

    /// Shards of another test, a shard given twice or missing, a report that is not a shard:
    /// each refused, naming the report and what differs.
    #[test]
    fn mismatches() {
        let workers: Vec<Samples> = vec![
            vec![(0, 1000, false)],
            vec![(1, 2000, false)],
            vec![(2, 3000, false)],
        ];
        let reports = shard_reports(&workers, false);
        let mut other_size = reports.clone();
        other_size[1].1.config.size = 64;
        let mut not_a_shard = reports.clone();
        not_a_shard[2].1.config.shard = None;
        let mut other_count = reports.clone();
        if let Some(shard) = &mut other_count[0].1.config.shard {
            shard.count = 4;
        }
        let cases: [(Vec<(String, Report)>, &str); 6] = [
            (other_size, "config.size is 64 in w1.json but 32 in w0.json"),
            (
                vec![reports[0].clone(), reports[1].clone()],
                "shard 3/3 missing",
            ),
            (
                vec![reports[0].clone(), reports[1].clone(), reports[1].clone()],
                "both shard 2/3",
            ),
            (not_a_shard, "w2.json is not a shard"),
            (other_count, "is one of 4"),
            (Vec::new(), "no reports"),
        ];
        for (given, expected) in cases {
            let err = merge(&given, false).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        // Shards whose windows start a second apart line up on wall-clock seconds.
        let mut late = shard_reports(&workers, false);
        let later = Report::derive(
            context(Config {
                threads: 1,
                ..late[1].1.config.clone()
            }),
            &measure(1, &[(0, 2000, false)], false),
        );
        late[1].1 = later;
        let merged = merge(&late, false).unwrap();
        let seconds: Vec<(u32, u64)> = merged
            .timeline
            .iter()
            .map(|s| (s.index, s.round_trips))
            .collect();
        assert_eq!(seconds, [(0, 1), (1, 1), (2, 1)]);
        assert_eq!(merged.measured_s, 4.0);
    }
}
