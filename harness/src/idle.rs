//! What an idle CPU does, read for the manifest and, on request, set for the run.
//!
//! On a KVM guest with the `cpuidle-haltpoll` driver an idle vCPU polls for up to
//! `guest_halt_poll_ns` before it halts; a halted vCPU is woken by an interrupt through the
//! hypervisor, which costs both the waker and the woken. At a fixed offered rate nearly every
//! message finds its peer idle, so this one kernel parameter sets much of what a round trip
//! costs: measured on the 2-vCPU VM of BENCHMARKS.md (`tcp` at 10,000/s over 64 connections, 4
//! interleaved trials each), the server's CPU per round trip was 30.2 µs with the boot default
//! of 0 (always halt) and 10.8 µs polling up to 200 µs; hyper's 36.0 and 16.2 µs. Two machines
//! that differ here differ by 3x, so every manifest records it, and `[run] halt_poll` pins it
//! for the run (restored afterwards), as `pyperf system tune` pins a CPU's frequency.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The idle state of the machine's CPUs, as far as sysfs tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idle {
    /// `cpuidle` driver (`haltpoll`, `intel_idle`, `acpi_idle`, ...), if any.
    pub driver: Option<String>,
    /// `cpuidle` governor.
    pub governor: Option<String>,
    /// The haltpoll guest's polling, when the machine is one.
    pub halt_poll: Option<HaltPoll>,
}

/// The `haltpoll` module's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaltPoll {
    /// Longest poll before halting (`guest_halt_poll_ns`); 0 halts at once.
    pub ns: u64,
    /// Whether the poll window shrinks after a halt that outlasted it
    /// (`guest_halt_poll_allow_shrink`); when it does, the window depends on the recent past.
    pub allow_shrink: bool,
}

/// Where sysfs keeps what [`Idle`] reads, under a root (`/sys` on a live machine).
#[derive(Debug)]
struct Files {
    driver: PathBuf,
    governor: PathBuf,
    ns: PathBuf,
    allow_shrink: PathBuf,
}

impl Files {
    fn under(root: &Path) -> Files {
        let cpuidle = root.join("devices/system/cpu/cpuidle");
        let params = root.join("module/haltpoll/parameters");
        Files {
            driver: cpuidle.join("current_driver"),
            governor: cpuidle.join("current_governor_ro"),
            ns: params.join("guest_halt_poll_ns"),
            allow_shrink: params.join("guest_halt_poll_allow_shrink"),
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl Idle {
    /// Reads the machine's idle state from sysfs at `root`.
    pub fn read(root: &Path) -> Idle {
        let files = Files::under(root);
        let halt_poll = match (read_trimmed(&files.ns), read_trimmed(&files.allow_shrink)) {
            (Some(ns), Some(shrink)) => ns.parse().ok().map(|ns| HaltPoll {
                ns,
                allow_shrink: shrink == "Y",
            }),
            _ => None,
        };
        Idle {
            driver: read_trimmed(&files.driver),
            governor: read_trimmed(&files.governor),
            halt_poll,
        }
    }

    /// "haltpoll, polls 200 µs before halting (fixed)", as summaries print it.
    pub fn describe(&self) -> String {
        let driver = self.driver.as_deref().unwrap_or("no cpuidle driver");
        match self.halt_poll {
            Some(HaltPoll { ns: 0, .. }) => format!("{driver}, halts at once when idle"),
            Some(HaltPoll { ns, allow_shrink }) => format!(
                "{driver}, polls up to {} before halting ({})",
                humantime::format_duration(Duration::from_nanos(ns)),
                if allow_shrink { "adaptive" } else { "fixed" }
            ),
            None => driver.to_owned(),
        }
    }
}

/// The haltpoll setting a run asked for, applied until dropped, then put back.
#[derive(Debug)]
pub struct Pinned {
    files: Files,
    previous: Option<HaltPoll>,
}

/// Why a requested halt-poll setting could not be applied (the run goes on without it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotApplied {
    /// No haltpoll module: bare metal, or a guest without the driver.
    #[error(
        "halt_poll is set, but this machine has no {0} (only KVM guests with the cpuidle-haltpoll driver have it): the run keeps the machine's own idle behaviour"
    )]
    NoHaltPoll(String),
    /// Writing the parameter failed (usually: not root).
    #[error(
        "halt_poll is set, but writing {path} failed ({reason}; it needs root): the run keeps the machine's own setting"
    )]
    Write {
        /// The file.
        path: String,
        /// The error.
        reason: String,
    },
}

impl Pinned {
    /// Sets a fixed poll window of `window` (shrinking off) under sysfs `root`; the returned
    /// guard restores the previous values when dropped.
    pub fn apply(root: &Path, window: Duration) -> Result<Pinned, NotApplied> {
        let files = Files::under(root);
        let previous = Idle::read(root).halt_poll;
        if previous.is_none() {
            return Err(NotApplied::NoHaltPoll(files.ns.display().to_string()));
        }
        let pinned = Pinned { files, previous };
        let ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        pinned.write(HaltPoll {
            ns,
            allow_shrink: false,
        })?;
        Ok(pinned)
    }

    fn write(&self, setting: HaltPoll) -> Result<(), NotApplied> {
        let put = |path: &Path, value: &str| {
            std::fs::write(path, value).map_err(|err| NotApplied::Write {
                path: path.display().to_string(),
                reason: err.to_string(),
            })
        };
        // Shrinking first: with it off, the new window cannot shrink before it is read.
        put(
            &self.files.allow_shrink,
            if setting.allow_shrink { "Y" } else { "N" },
        )?;
        put(&self.files.ns, &setting.ns.to_string())
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(previous) = self.previous
            && let Err(err) = self.write(previous)
        {
            tracing::error!(
                "could not restore the machine's halt-poll setting ({err}); set it back with: echo {} > {}; echo {} > {}",
                if previous.allow_shrink { "Y" } else { "N" },
                self.files.allow_shrink.display(),
                previous.ns,
                self.files.ns.display()
            );
        }
    }
}

/// Applies `[run] halt_poll` for as long as the returned guard lives; a machine where it
/// cannot be applied gets a warning, and its manifest shows what the run measured with.
pub fn pin_for_run(window: Option<Duration>) -> Option<Pinned> {
    let window = window?;
    match Pinned::apply(Path::new("/sys"), window) {
        Ok(pinned) => Some(pinned),
        Err(err) => {
            tracing::warn!("{err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree holding what a haltpoll guest shows.
    fn guest(ns: &str, shrink: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let cpuidle = root.path().join("devices/system/cpu/cpuidle");
        let params = root.path().join("module/haltpoll/parameters");
        std::fs::create_dir_all(&cpuidle).unwrap();
        std::fs::create_dir_all(&params).unwrap();
        std::fs::write(cpuidle.join("current_driver"), "haltpoll\n").unwrap();
        std::fs::write(cpuidle.join("current_governor_ro"), "haltpoll\n").unwrap();
        std::fs::write(params.join("guest_halt_poll_ns"), format!("{ns}\n")).unwrap();
        std::fs::write(
            params.join("guest_halt_poll_allow_shrink"),
            format!("{shrink}\n"),
        )
        .unwrap();
        root
    }

    fn params(root: &Path) -> (String, String) {
        let files = Files::under(root);
        (
            std::fs::read_to_string(files.ns).unwrap(),
            std::fs::read_to_string(files.allow_shrink).unwrap(),
        )
    }

    #[test]
    fn reads_and_describes() {
        let cases = [
            ("0", "Y", "haltpoll, halts at once when idle"),
            (
                "200000",
                "Y",
                "haltpoll, polls up to 200us before halting (adaptive)",
            ),
            (
                "1500000",
                "N",
                "haltpoll, polls up to 1ms 500us before halting (fixed)",
            ),
        ];
        for (ns, shrink, expected) in cases {
            let root = guest(ns, shrink);
            let idle = Idle::read(root.path());
            assert_eq!(idle.governor.as_deref(), Some("haltpoll"));
            assert_eq!(idle.describe(), expected, "{ns} {shrink}");
        }
        let bare = tempfile::tempdir().unwrap();
        assert_eq!(Idle::read(bare.path()), Idle::default());
        assert_eq!(Idle::read(bare.path()).describe(), "no cpuidle driver");
    }

    #[test]
    fn pins_for_the_run_then_restores() {
        let root = guest("0", "Y");
        {
            let _pinned = Pinned::apply(root.path(), Duration::from_micros(200)).unwrap();
            assert_eq!(params(root.path()), ("200000".to_owned(), "N".to_owned()));
            assert_eq!(
                Idle::read(root.path()).halt_poll,
                Some(HaltPoll {
                    ns: 200_000,
                    allow_shrink: false
                })
            );
        }
        assert_eq!(params(root.path()), ("0".to_owned(), "Y".to_owned()));
    }

    #[test]
    fn a_machine_without_haltpoll_is_told_apart() {
        let bare = tempfile::tempdir().unwrap();
        let err = Pinned::apply(bare.path(), Duration::from_micros(200)).unwrap_err();
        assert!(
            matches!(err, NotApplied::NoHaltPoll(ref p) if p.ends_with("module/haltpoll/parameters/guest_halt_poll_ns")),
            "{err}"
        );
    }

    #[test]
    fn an_unwritable_parameter_is_reported_not_fatal() {
        let root = guest("0", "Y");
        // A directory where the file should be: reading fails too, so make the read succeed
        // and the write fail by replacing allow_shrink's file with a directory after reading.
        let files = Files::under(root.path());
        let pinned = Pinned {
            previous: Some(HaltPoll {
                ns: 0,
                allow_shrink: true,
            }),
            files,
        };
        std::fs::remove_file(&pinned.files.allow_shrink).unwrap();
        std::fs::create_dir(&pinned.files.allow_shrink).unwrap();
        let err = pinned
            .write(HaltPoll {
                ns: 200_000,
                allow_shrink: false,
            })
            .unwrap_err();
        assert!(
            matches!(err, NotApplied::Write { ref path, .. } if path.ends_with("guest_halt_poll_allow_shrink")),
            "{err}"
        );
        // Nothing was half-written: the window is untouched.
        assert_eq!(std::fs::read_to_string(&pinned.files.ns).unwrap(), "0\n");
        std::fs::remove_dir(&pinned.files.allow_shrink).unwrap();
        std::fs::write(&pinned.files.allow_shrink, "Y\n").unwrap();
    }
}
