//! Monitoring: the CPU this process, its threads and its reaped children use, the CPUs the
//! process may run on, and the machine's CPU steal from `/proc/stat` — what decides whether a
//! result measures the server or the client (or the neighbours on the host). A [`Bracket`]
//! takes the readings at both ends of a window in one place, for every caller.

use std::time::{Duration, SystemTime};

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

/// User plus system CPU time of this process's children that have been waited for.
pub fn children_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
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

/// Whose CPU time a [`Bracket`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuOf {
    /// This process ([`process_cpu`]).
    Process,
    /// Children reaped during the window ([`children_cpu`]): a tool run as a child process.
    Children,
}

/// The readings at the start of a window; [`Bracket::close`] takes them again at its end.
#[derive(Debug, Clone, Copy)]
pub struct Bracket {
    of: CpuOf,
    cpu: Duration,
    steal: Option<CpuTimes>,
    wall: SystemTime,
    instant: std::time::Instant,
}

/// What happened between a [`Bracket`]'s two ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracketed {
    /// CPU time used (by whom the bracket was opened for).
    pub cpu: Duration,
    /// The machine's CPU steal over the window, percent (`None` without `/proc/stat`).
    pub steal_percent: Option<f64>,
    /// Wall-clock start of the window.
    pub started: SystemTime,
    /// Wall-clock end of the window.
    pub ended: SystemTime,
    /// The window's length, on the monotonic clock.
    pub elapsed: Duration,
}

impl Bracket {
    /// Takes the start readings now.
    pub fn open(of: CpuOf) -> Bracket {
        Bracket {
            of,
            cpu: cpu_of(of),
            steal: CpuTimes::now(),
            wall: SystemTime::now(),
            instant: std::time::Instant::now(),
        }
    }

    /// Takes the end readings now and returns the differences.
    pub fn close(&self) -> Bracketed {
        Bracketed {
            cpu: cpu_of(self.of).saturating_sub(self.cpu),
            steal_percent: steal_between(self.steal, CpuTimes::now()),
            started: self.wall,
            ended: SystemTime::now(),
            elapsed: self.instant.elapsed(),
        }
    }
}

fn cpu_of(of: CpuOf) -> Duration {
    match of {
        CpuOf::Process => process_cpu(),
        CpuOf::Children => children_cpu(),
    }
}

/// Steal between two readings, percent; `None` if either is missing.
pub fn steal_between(earlier: Option<CpuTimes>, later: Option<CpuTimes>) -> Option<f64> {
    Some(earlier?.steal_percent(&later?))
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

    /// A bracket around busy work sees this process's CPU and a plausible steal.
    #[test]
    fn bracket() {
        let bracket = Bracket::open(CpuOf::Process);
        let started = thread_cpu();
        while thread_cpu() - started < Duration::from_millis(20) {
            std::hint::black_box(0u64);
        }
        let b = bracket.close();
        assert!(b.cpu >= Duration::from_millis(15), "{:?}", b.cpu);
        assert!(b.elapsed >= Duration::from_millis(15));
        assert!(b.ended >= b.started);
        let steal = b.steal_percent.unwrap();
        assert!((0.0..=100.0).contains(&steal), "{steal}");
        assert_eq!(steal_between(None, CpuTimes::now()), None);
    }
}
