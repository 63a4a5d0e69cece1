//! Child processes of a run (servers and clients): each in a process group of its own, pinned
//! to its CPUs before it executes, and stopped group-wide — SIGTERM, SIGKILL after a grace
//! period, then a check that no member of the group is left.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::cpuset::CpuSet;

/// A command for `argv` in a new process group, pinned to `cpus`, killed if dropped.
pub fn command(argv: &[String], cpus: &CpuSet) -> io::Result<Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut affinity = nix::sched::CpuSet::new();
    for &cpu in cpus.cpus() {
        affinity.set(cpu).map_err(io::Error::from)?;
    }
    let mut command = Command::new(program);
    command.args(args).process_group(0).kill_on_drop(true);
    pin(&mut command, affinity);
    Ok(command)
}

/// Starts `argv` as [`command`] makes it, stdin closed, stdout as `stdout` says, stderr piped;
/// returns the child and its process group. The error names the command.
pub fn spawn(
    argv: &[String],
    cpus: &CpuSet,
    stdout: std::process::Stdio,
) -> Result<(Child, i32), String> {
    let shown = argv.join(" ");
    let mut command =
        self::command(argv, cpus).map_err(|err| format!("cannot prepare `{shown}`: {err}"))?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped());
    let child = command
        .spawn()
        .map_err(|err| format!("cannot start `{shown}`: {err}"))?;
    // A child that has not been waited for has an id, and it leads its own group.
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(0);
    Ok((child, pgid))
}

/// Pins the child to `affinity` between fork and exec, so every thread it ever starts
/// inherits the mask (pinning after spawn would miss threads started in between).
#[allow(unsafe_code)]
fn pin(command: &mut Command, affinity: nix::sched::CpuSet) {
    // SAFETY: the closure runs in the forked child before exec. It only makes the
    // sched_setaffinity system call on a value prepared before the fork: no allocation, no
    // locks, nothing that is not async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::sched::sched_setaffinity(Pid::from_raw(0), &affinity).map_err(io::Error::from)
        });
    }
}

/// Sends `signal` to every process in group `pgid`; false if the group no longer exists.
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// Whether any process of group `pgid` still exists.
pub fn group_alive(pgid: i32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// How a stop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The leader had already exited before it was asked to (it crashed or quit by itself).
    pub exited_early: Option<ExitStatus>,
    /// It ignored SIGTERM for the whole grace period and was killed.
    pub killed: bool,
    /// Some process of its group survived even SIGKILL (should never happen).
    pub leftovers: bool,
}

/// Stops `child` and its whole group: SIGTERM, then SIGKILL after `grace`, then members that
/// outlived the leader (workers, wrapped programs) are terminated too.
pub async fn stop(child: &mut Child, pgid: i32, grace: Duration) -> Stopped {
    let exited_early = child.try_wait().ok().flatten();
    let mut killed = false;
    if exited_early.is_none() {
        signal_group(pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            killed = true;
            signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    // The leader is gone and reaped; make sure its group is too.
    if group_alive(pgid) {
        signal_group(pgid, Signal::SIGTERM);
        if !wait_for_group_exit(pgid, grace.min(Duration::from_secs(1))).await {
            signal_group(pgid, Signal::SIGKILL);
            wait_for_group_exit(pgid, Duration::from_secs(1)).await;
        }
    }
    Stopped {
        exited_early,
        killed,
        leftovers: group_alive(pgid),
    }
}

/// Polls (every 10 ms, at most `limit`) until no process of `pgid` is left.
async fn wait_for_group_exit(pgid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while group_alive(pgid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The last `lines` lines of a log file (empty if unreadable), for failure messages.
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child runs on exactly the CPUs it was given, in its own group, and stop() ends the
    /// whole group (here a shell and its sleeping child).
    #[tokio::test]
    async fn pinned_group_is_stopped_entirely() {
        let allowed = CpuSet::new(echobench_core::monitor::allowed_cpus());
        let last = CpuSet::new(vec![*allowed.cpus().last().unwrap()]);
        let argv: Vec<String> = [
            "sh",
            "-c",
            "grep Cpus_allowed_list /proc/self/status; sleep 30 & wait",
        ]
        .map(String::from)
        .to_vec();
        let mut child = command(&argv, &last)
            .unwrap()
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = i32::try_from(child.id().unwrap()).unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt;
        tokio::io::BufReader::new(&mut stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(
            line.split_whitespace().last(),
            Some(last.to_string().as_str())
        );
        assert!(group_alive(pgid));
        let stopped = stop(&mut child, pgid, Duration::from_secs(2)).await;
        assert_eq!(stopped.exited_early, None);
        assert!(!stopped.leftovers);
        assert!(!group_alive(pgid));
    }
}
