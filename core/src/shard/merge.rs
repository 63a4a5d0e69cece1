//! The reports of a test's shards merged into the report of that test: exactly (counts,
//! errors and HDR histograms add; the timeline is aligned on wall-clock seconds; objectives
//! are judged again over the whole), and only when they are every shard of one test.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::measurement::Measurement;
use crate::report::{Context, Report, ReportError, Tool};

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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::error::ErrorKind;
    use crate::latency;
    use crate::measurement::Second;
    use crate::protocol::Protocol;
    use crate::report::TargetInfo;
    use crate::shard::ShardSpec;
    use proptest::prelude::*;

    fn spec(index: u32, count: u32) -> ShardSpec {
        ShardSpec { index, count }
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
