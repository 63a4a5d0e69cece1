//! `--processes P`: one test over P worker processes on this machine, for more connections
//! than one process may open (its open-file limit) or to spread a load over more event loops
//! than one process schedules well. Each worker is this same binary, started with its shard
//! of the test (a hidden `--worker-config`), pinned to its part of this process's CPUs and
//! told the instant its window opens; the parent waits for every worker, merges their
//! reports exactly ([`echobench_core::shard::merge`]) and writes the one report of the test.
//! A worker that fails fails the run with its stderr: never a silently smaller load.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use echobench_core::config::Config;
use echobench_core::report::Report;
use echobench_core::shard::ShardSpec;

use crate::cli::exit;

/// One worker, as started: its shard and where it writes its report and its stderr.
struct Worker {
    spec: ShardSpec,
    report: PathBuf,
    stderr: PathBuf,
}

/// The most worker processes `--processes` starts.
pub const MAX_PROCESSES: u32 = 256;

/// The CPUs worker `index` (0-based) of `count` is pinned to: contiguous parts of `cpus`
/// when there are at least as many CPUs as workers, else the CPUs in turn.
pub fn cpus_of(cpus: &[usize], index: usize, count: usize) -> Vec<usize> {
    if cpus.is_empty() {
        return Vec::new();
    }
    if count >= cpus.len() {
        return vec![cpus[index % cpus.len()]];
    }
    let from = cpus.len() * index / count;
    let to = cpus.len() * (index + 1) / count;
    cpus[from..to].to_vec()
}

/// When the workers' windows open: the given `--start-at`, or far enough ahead for every
/// worker to start, open its connections (at `--connect-rate` if set, else assuming 10,000 a
/// second) and warm up.
fn window_opens(config: &Config) -> SystemTime {
    if let Some(at) = config.start_at {
        return at;
    }
    let connections = f64::from(config.peak_connections());
    let ramp = connections / config.connect_rate.unwrap_or(10_000.0);
    SystemTime::now()
        + Duration::from_secs(1)
        + config.warmup
        + Duration::try_from_secs_f64(ramp).unwrap_or_default()
}

/// The end of a worker's stderr, for the error that names it.
fn stderr_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        "(nothing on stderr)".to_owned()
    } else {
        tail.join("\n")
    }
}

/// Why the workers could not produce one report.
#[derive(Debug, thiserror::Error)]
pub enum ProcessesError {
    /// The test cannot be split so (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A worker could not be started or did not report (exit 1, or the worker's own code
    /// when it could not reach the target).
    #[error("{message}")]
    Worker {
        /// What happened, with the worker's stderr.
        message: String,
        /// The exit code to leave with.
        code: u8,
    },
}

/// Runs `test` over `processes` workers and returns the merged report.
pub async fn run(
    test: &Config,
    processes: u32,
    threads_given: bool,
    interrupt: tokio_util::sync::CancellationToken,
) -> Result<Report, ProcessesError> {
    let failed = |message: String| ProcessesError::Worker {
        message,
        code: exit::FAILURE,
    };
    if !(2..=MAX_PROCESSES).contains(&processes) {
        return Err(ProcessesError::Usage(format!(
            "--processes must be between 2 and {MAX_PROCESSES} (1 is the default: no workers), not {processes}"
        )));
    }
    let opens = window_opens(test);
    let cpus = echobench_core::monitor::allowed_cpus();
    let exe = std::env::current_exe().map_err(|err| {
        failed(format!(
            "cannot find this program to start its workers: {err}"
        ))
    })?;
    let scratch = echobench_core::copies::Scratch::create("echo-client")
        .map_err(|err| failed(format!("cannot make a directory for the workers: {err}")))?;
    let mut workers = Vec::with_capacity(processes as usize);
    let mut children = Vec::with_capacity(processes as usize);
    for i in 0..processes {
        let spec = ShardSpec {
            index: i + 1,
            count: processes,
        };
        let mine = cpus_of(&cpus, i as usize, processes as usize);
        let mut config = test
            .shard(spec)
            .map_err(|err| ProcessesError::Usage(format!("--processes {processes}: {err}")))?;
        config.start_at = Some(opens);
        config.threads = if threads_given {
            (test.threads / processes as usize).max(1)
        } else {
            mine.len().max(1)
        };
        let dir = scratch.path();
        let config_path = dir.join(format!("worker-{}.config.json", i + 1));
        let report = dir.join(format!("worker-{}.json", i + 1));
        let stderr = dir.join(format!("worker-{}.stderr", i + 1));
        let text = serde_json::to_string(&config).map_err(|err| failed(err.to_string()))?;
        std::fs::write(&config_path, text)
            .map_err(|err| failed(format!("cannot write {}: {err}", config_path.display())))?;
        let stderr_file = std::fs::File::create(&stderr)
            .map_err(|err| failed(format!("cannot write {}: {err}", stderr.display())))?;
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg(&config.url)
            .arg("--worker-config")
            .arg(&config_path)
            .arg("--json")
            .arg(&report)
            .args(["--quiet", "--no-progress"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_file)
            .kill_on_drop(true);
        if !mine.is_empty() {
            let list: Vec<String> = mine.iter().map(ToString::to_string).collect();
            command.arg("--pin").arg(list.join(","));
        }
        let child = command
            .spawn()
            .map_err(|err| failed(format!("cannot start worker process {spec}: {err}")))?;
        children.push(child);
        workers.push(Worker {
            spec,
            report,
            stderr,
        });
    }
    tracing::info!(processes, "worker processes started");

    // Wait for every worker, as each ends: the first that fails stops the others at once
    // (the test is already not what was asked). An interrupt is passed on (each worker then
    // reports what it ran).
    let pids: Vec<u32> = children
        .iter()
        .filter_map(tokio::process::Child::id)
        .collect();
    let mut waits = tokio::task::JoinSet::new();
    for (i, mut child) in children.into_iter().enumerate() {
        waits.spawn(async move { (i, child.wait().await) });
    }
    let mut forwarded = false;
    let mut ended = 0;
    while ended < workers.len() {
        let joined = tokio::select! {
            joined = waits.join_next() => joined,
            () = interrupt.cancelled(), if !forwarded => {
                forwarded = true;
                terminate(&pids);
                continue;
            }
        };
        let Some(joined) = joined else { break };
        ended += 1;
        let (i, status) =
            joined.map_err(|err| failed(format!("cannot wait for a worker process: {err}")))?;
        let worker = &workers[i];
        let spec = worker.spec;
        let status = status
            .map_err(|err| failed(format!("cannot wait for worker process {spec}: {err}")))?;
        if !exit::reported(status.code()) {
            // Its load is gone: the others' would be a smaller test than the one asked for.
            terminate(&pids);
            let code = match status.code().and_then(|c| u8::try_from(c).ok()) {
                Some(code @ (exit::USAGE | exit::UNREACHABLE)) => code,
                _ => exit::FAILURE,
            };
            return Err(ProcessesError::Worker {
                message: format!(
                    "worker process {spec} failed ({status}), so the test did not run as asked; its stderr:\n{}",
                    stderr_of(&worker.stderr)
                ),
                code,
            });
        }
    }
    let mut reports = Vec::with_capacity(workers.len());
    for worker in &workers {
        let spec = worker.spec;
        let stderr = stderr_of(&worker.stderr);
        if stderr != "(nothing on stderr)" {
            for line in stderr.lines() {
                eprintln!("worker {spec}: {line}");
            }
        }
        let text = std::fs::read_to_string(&worker.report).map_err(|err| {
            failed(format!(
                "worker process {spec} wrote no report ({err}); its stderr:\n{stderr}"
            ))
        })?;
        let report = Report::from_json(&text).map_err(|err| {
            failed(format!(
                "worker process {spec} wrote a report that cannot be read: {err}"
            ))
        })?;
        reports.push((format!("process {spec}"), report));
    }
    drop(scratch);
    echobench_core::shard::merge(&reports, true)
        .map_err(|err| failed(format!("cannot merge the workers' reports: {err}")))
}

/// Pins this process (a worker: `--pin`), and every thread it starts after, to `cpus`.
pub(crate) fn pin(cpus: &[usize]) -> nix::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// Sends SIGTERM to the workers still running (they stop and report, as on Ctrl-C).
fn terminate(pids: &[u32]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for &pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contiguous parts when the CPUs suffice, in turn when they do not.
    #[test]
    fn cpu_parts() {
        /// (CPUs, workers, each worker's CPUs)
        type Case<'a> = (&'a [usize], usize, &'a [&'a [usize]]);
        let cases: [Case<'_>; 4] = [
            (&[0, 1], 2, &[&[0], &[1]]),
            (&[0, 1, 2, 3], 2, &[&[0, 1], &[2, 3]]),
            (&[1], 3, &[&[1], &[1], &[1]]),
            (&[0, 1, 2], 2, &[&[0], &[1, 2]]),
        ];
        for (cpus, count, expected) in cases {
            let got: Vec<Vec<usize>> = (0..count).map(|i| cpus_of(cpus, i, count)).collect();
            assert_eq!(got, expected, "{cpus:?} over {count}");
        }
        assert!(cpus_of(&[], 0, 2).is_empty());
    }
}
