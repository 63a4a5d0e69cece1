//! What a server costs: CPU time (user + system, all threads of all processes in its group)
//! and resident memory, sampled while the client runs. The CPU used over the client's measured
//! window is interpolated from the samples on either side of its start and end, so warmup and
//! teardown are not charged.
//!
//! CPU comes from each process's CPU-time clock (`clock_getcpuclockid` + `clock_gettime`:
//! nanoseconds, its exited threads included, the running ones brought up to date), falling back
//! to `/proc/PID/stat`'s clock ticks where that clock cannot be read. Ticks are 10 ms: over a
//! 2 s window of a server using 0.4 CPU that is up to 2.5% at each end, more than the
//! differences a fixed-rate cost comparison is after.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// How often the server is sampled: cheap enough (a scan of /proc) not to disturb the run.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// One reading of a process group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken.
    pub at: SystemTime,
    /// Total CPU time of the group's processes so far.
    pub cpu: Duration,
    /// Total resident memory of the group's processes, in bytes.
    pub rss: u64,
}

/// The fields of `/proc/PID/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFields {
    /// Process group.
    pub pgrp: i32,
    /// User CPU in clock ticks.
    pub utime: u64,
    /// System CPU in clock ticks.
    pub stime: u64,
    /// Resident set in pages.
    pub rss_pages: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<StatFields> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(StatFields {
        pgrp: fields.get(5 - 3)?.parse().ok()?,
        utime: field(14)?,
        stime: field(15)?,
        rss_pages: field(24)?,
    })
}

/// Reads the group's CPU and RSS now, by scanning /proc for processes in group `pgid`.
pub fn read_group(pgid: i32) -> Sample {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096)
        .max(1) as u64;
    let mut cpu_ns = 0u64;
    let mut rss_pages = 0u64;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(stat) = parse_stat(&line)
                && stat.pgrp == pgid
            {
                cpu_ns += name
                    .parse::<i32>()
                    .ok()
                    .and_then(process_cpu_ns)
                    .unwrap_or_else(|| {
                        (stat.utime + stat.stime).saturating_mul(1_000_000_000) / ticks
                    });
                rss_pages += stat.rss_pages;
            }
        }
    }
    Sample {
        at: SystemTime::now(),
        cpu: Duration::from_nanos(cpu_ns),
        rss: rss_pages * page,
    }
}

/// The CPU time of process `pid` so far, in nanoseconds, from its CPU-time clock.
fn process_cpu_ns(pid: i32) -> Option<u64> {
    let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid)).ok()?;
    let time = nix::time::clock_gettime(clock).ok()?;
    u64::try_from(Duration::from(time).as_nanos()).ok()
}

/// Samples group `pgid` every [`INTERVAL`] until `stop` is cancelled (one last sample then).
pub async fn sample_until(pgid: i32, stop: CancellationToken) -> Vec<Sample> {
    let mut samples = vec![read_group(pgid)];
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => samples.push(read_group(pgid)),
        }
    }
    samples.push(read_group(pgid));
    samples
}

/// The cumulative CPU at `at`, linearly interpolated between the samples around it.
fn cpu_at(samples: &[Sample], at: SystemTime) -> Option<Duration> {
    let after = samples.iter().position(|s| s.at >= at)?;
    if after == 0 {
        return Some(samples[0].cpu);
    }
    let (a, b) = (samples[after - 1], samples[after]);
    let span = b.at.duration_since(a.at).ok()?.as_secs_f64();
    let into = at.duration_since(a.at).ok()?.as_secs_f64();
    let fraction = if span > 0.0 { into / span } else { 1.0 };
    let delta = b.cpu.saturating_sub(a.cpu).as_secs_f64() * fraction;
    Some(a.cpu + Duration::from_secs_f64(delta))
}

/// CPU used between `from` and `to` (`None` if the samples do not cover the window).
pub fn cpu_between(samples: &[Sample], from: SystemTime, to: SystemTime) -> Option<Duration> {
    let last = samples.last()?;
    if samples.first()?.at > from || last.at < to {
        return None;
    }
    Some(cpu_at(samples, to)?.saturating_sub(cpu_at(samples, from)?))
}

/// The largest RSS among samples taken between `from` and `to` (and the ones just outside).
pub fn peak_rss(samples: &[Sample], from: SystemTime, to: SystemTime) -> Option<u64> {
    let window = |s: &&Sample| s.at + INTERVAL >= from && s.at <= to + INTERVAL;
    samples.iter().filter(window).map(|s| s.rss).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields are found after the last parenthesis, whatever the command name holds.
    #[test]
    fn parses_stat_lines() {
        let line = "4242 (echo (server) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 12345 987654 321 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(StatFields {
                pgrp: 4242,
                utime: 250,
                stime: 75,
                rss_pages: 321
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    /// CPU over a window is interpolated between the samples that bracket it.
    #[test]
    fn interpolates_cpu_over_the_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let s = |ms: u64, cpu_ms: u64, rss: u64| Sample {
            at: t0 + Duration::from_millis(ms),
            cpu: Duration::from_millis(cpu_ms),
            rss,
        };
        // 1 CPU busy from 0 to 1000 ms, idle afterwards.
        let samples = [
            s(0, 0, 10),
            s(500, 500, 30),
            s(1000, 1000, 20),
            s(1500, 1000, 5),
        ];
        let between = |a: u64, b: u64| {
            cpu_between(
                &samples,
                t0 + Duration::from_millis(a),
                t0 + Duration::from_millis(b),
            )
            .map(|d| d.as_millis())
        };
        assert_eq!(between(250, 750), Some(500));
        assert_eq!(between(0, 1500), Some(1000));
        assert_eq!(between(900, 1400), Some(100));
        assert_eq!(between(1000, 1500), Some(0));
        assert_eq!(between(0, 2000), None, "beyond the last sample");
        assert_eq!(
            peak_rss(
                &samples,
                t0 + Duration::from_millis(600),
                t0 + Duration::from_millis(700)
            ),
            Some(30)
        );
    }

    /// Reading our own group finds at least this process, with some CPU and memory; CPU
    /// spent in between shows up to within a millisecond, finer than a clock tick.
    #[test]
    fn reads_a_live_group() {
        let pgid = nix::unistd::getpgrp().as_raw();
        let sample = read_group(pgid);
        assert!(sample.rss > 0);
        assert!(sample.cpu > Duration::ZERO);
        let me = i32::try_from(std::process::id()).unwrap();
        let before = process_cpu_ns(me).unwrap();
        let start = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        loop {
            let now =
                nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
            if Duration::from(now) - Duration::from(start) >= Duration::from_millis(3) {
                break;
            }
            std::hint::spin_loop();
        }
        let after = process_cpu_ns(me).unwrap();
        assert!(after - before >= 3_000_000, "{before} -> {after}");
    }
}
