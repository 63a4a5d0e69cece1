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
use crate::stages::{Stage, Stages};

mod merge;

pub use merge::{MergeError, WorkerOutcome, Workers, merge};

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
}
