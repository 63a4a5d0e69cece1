//! Facts about the machine and the source tree, for the run manifest: what the numbers were
//! measured on and built from.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online logical CPUs.
    pub cpus_online: usize,
    /// CPUs this process may use.
    pub cpus_allowed: Vec<usize>,
    /// Kernel release.
    pub kernel: String,
    /// Total memory in bytes.
    pub memory_bytes: Option<u64>,
    /// What an idle CPU does (on a haltpoll guest: how long it polls before halting), read
    /// once the run's `halt_poll` was applied. Absent in manifests before 2026-12-03.
    #[serde(default)]
    pub idle: crate::idle::Idle,
}

impl Machine {
    /// "CPU model, N CPUs online, kernel K, idle: ...", as the published pages print it.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} CPUs online, kernel {}, idle: {}",
            self.cpu_model,
            self.cpus_online,
            self.kernel,
            self.idle.describe()
        )
    }

    /// Reads the current machine.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cpus_online = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        Machine {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".to_owned()),
            cpu_model,
            cpus_online,
            cpus_allowed: echobench_core::monitor::allowed_cpus(),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            memory_bytes,
            idle: crate::idle::Idle::read(Path::new("/sys")),
        }
    }

    /// The machine a run folder's manifest says it was measured on, if it says.
    pub fn of_run(run: &Path) -> Option<Machine> {
        let text = std::fs::read_to_string(run.join("manifest.json")).ok()?;
        let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
        serde_json::from_value(manifest.get("machine")?.clone()).ok()
    }
}

/// A warning when two runs were measured on machines described differently (CPU, kernel, CPUs
/// online, idle behaviour): their differences may be the machine's, not the servers'.
pub fn difference_note(a: Option<&Machine>, b: Option<&Machine>) -> Option<String> {
    let (a, b) = (a?.describe(), b?.describe());
    (a != b).then(|| {
        format!(
            "Note: the runs were measured on machines that differ, so part of any change may be the machine's:\n  A: {a}\n  B: {b}\n"
        )
    })
}

#[cfg(test)]
impl Machine {
    /// A 2-CPU haltpoll guest whose idle vCPUs poll up to `halt_poll_ns` (fixed), for tests.
    pub(crate) fn example(halt_poll_ns: u64) -> Machine {
        Machine {
            hostname: "vm".to_owned(),
            cpu_model: "AMD EPYC".to_owned(),
            cpus_online: 2,
            cpus_allowed: vec![0, 1],
            kernel: "6.18.44".to_owned(),
            memory_bytes: None,
            idle: crate::idle::Idle {
                driver: Some("haltpoll".to_owned()),
                governor: Some("haltpoll".to_owned()),
                halt_poll: Some(crate::idle::HaltPoll {
                    ns: halt_poll_ns,
                    allow_shrink: false,
                }),
            },
        }
    }
}

/// The source revision the binaries were built from (as far as the working tree tells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// `git rev-parse HEAD`, if this is a git checkout.
    pub sha: Option<String>,
    /// Uncommitted changes to tracked files (`git status --porcelain --untracked-files=no`).
    pub dirty: Option<bool>,
}

impl Revision {
    /// Reads the revision of the tree at `dir`.
    pub fn read(dir: &Path) -> Revision {
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        Revision {
            sha: git(&["rev-parse", "HEAD"]),
            dirty: git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
        }
    }

    /// "`sha`", followed by " with uncommitted changes" when the tree was dirty.
    pub fn describe(&self) -> String {
        format!(
            "`{}`{}",
            self.sha.as_deref().unwrap_or("unknown"),
            if self.dirty == Some(true) {
                " with uncommitted changes"
            } else {
                ""
            }
        )
    }

    /// The first 7 characters of the sha, or `nogit`.
    pub fn short(&self) -> String {
        self.sha
            .as_deref()
            .map_or_else(|| "nogit".to_owned(), |s| s.chars().take(7).collect())
    }
}

/// The compiler that built this binary.
pub const RUSTC_VERSION: &str = env!("ECHOBENCH_RUSTC_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_description() {
        let cases = [
            (Some("abc123"), Some(false), "`abc123`"),
            (
                Some("abc123"),
                Some(true),
                "`abc123` with uncommitted changes",
            ),
            (Some("abc123"), None, "`abc123`"),
            (None, None, "`unknown`"),
        ];
        for (sha, dirty, expected) in cases {
            let revision = Revision {
                sha: sha.map(str::to_owned),
                dirty,
            };
            assert_eq!(revision.describe(), expected, "{sha:?} {dirty:?}");
        }
    }

    #[test]
    fn machine_description() {
        assert_eq!(
            Machine::example(200_000).describe(),
            "AMD EPYC, 2 CPUs online, kernel 6.18.44, idle: haltpoll, polls up to 200us before halting (fixed)"
        );
    }

    #[test]
    fn machines_that_differ_are_noted() {
        let machine = Machine::example;
        let (halting, polling) = (machine(0), machine(200_000));
        assert_eq!(
            difference_note(Some(&polling), Some(&polling.clone())),
            None
        );
        assert_eq!(difference_note(None, Some(&polling)), None);
        let note = difference_note(Some(&halting), Some(&polling)).unwrap();
        assert!(note.contains("A: AMD EPYC, 2 CPUs online, kernel 6.18.44, idle: haltpoll, halts at once when idle"), "{note}");
        assert!(note.contains("B: AMD EPYC, 2 CPUs online, kernel 6.18.44, idle: haltpoll, polls up to 200us before halting (fixed)"), "{note}");
    }
}
