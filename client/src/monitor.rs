//! Self-monitoring: the CPU this process and each worker thread use, the CPUs the process may
//! run on, and the machine's CPU steal from `/proc/stat` — what decides whether a result
//! measures the server or the client (or the neighbours on the host).

use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

/// CPUs in this process's affinity mask, in order (empty if it cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// User plus system CPU time of the whole process so far.
pub fn process_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => timeval(usage.user_time()) + timeval(usage.system_time()),
        Err(_) => Duration::ZERO,
    }
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    let micros = tv.tv_sec() * 1_000_000 + tv.tv_usec();
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The aggregate `cpu` line of `/proc/stat`: steal and total jiffies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Jiffies stolen by the hypervisor.
    pub steal: u64,
    /// All jiffies (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
}

impl CpuTimes {
    /// Reads the machine's counters now (`None` where `/proc/stat` is unavailable).
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Parses the aggregate `cpu ` line of a `/proc/stat` text.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if fields.len() < 8 {
            return None;
        }
        Some(CpuTimes {
            steal: fields[7],
            total: fields.iter().sum(),
        })
    }

    /// Percentage of CPU time stolen between `self` (earlier) and `later`.
    pub fn steal_percent(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * later.steal.saturating_sub(self.steal) as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steal is the steal column's share of all jiffies between two readings.
    #[test]
    fn steal_from_proc_stat() {
        let before = "cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let after = "cpu  200 0 100 1500 20 0 0 140 0 0\n";
        let a = CpuTimes::parse(before).unwrap();
        let b = CpuTimes::parse(after).unwrap();
        assert_eq!(
            a,
            CpuTimes {
                steal: 40,
                total: 1000
            }
        );
        assert_eq!(b.total, 1960);
        // 100 of 960 jiffies were stolen.
        assert!((a.steal_percent(&b) - 100.0 * 100.0 / 960.0).abs() < 1e-9);
        assert_eq!(a.steal_percent(&a), 0.0);
        assert_eq!(CpuTimes::parse("cpu 1 2 3\n"), None);
        assert_eq!(CpuTimes::parse("intr 5\n"), None);
    }

    /// The live readings are plausible on this machine.
    #[test]
    fn live_readings() {
        assert!(!allowed_cpus().is_empty());
        assert!(CpuTimes::now().is_some());
        let spent: u64 = (0..200_000u64).map(std::hint::black_box).sum();
        assert!(spent > 0);
        assert!(thread_cpu() > Duration::ZERO);
        assert!(process_cpu() >= thread_cpu());
    }
}
