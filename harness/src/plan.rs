//! From flags and a loaded config to what a run will do. [`Plan::resolve`] is pure — the
//! config file has already been read, the allowed CPUs are given — so every rule about flags,
//! overrides, servers and CPUs is unit-tested without touching the machine. [`prepare`] is the
//! separate step with side effects: it finds (and under cargo, builds) the binaries and picks
//! the run folder from the date, the host name and the git revision.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::binaries::{self, Binaries};
use crate::config::HarnessConfig;
use crate::cpuset::CpuSet;
use crate::machine::{Machine, Revision};
use crate::matrix::{self, Cell};

/// A config as it was read, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed config.
    pub config: HarnessConfig,
    /// Where it came from (a path, or "built-in default").
    pub source: String,
    /// Folder that relative server commands and `cwd` are resolved against.
    pub base_dir: PathBuf,
}

impl Loaded {
    /// Reads the config named by `--config`, or the built-in one.
    pub fn read(path: Option<&Path>) -> anyhow::Result<Loaded> {
        Ok(match path {
            Some(path) => {
                let config = HarnessConfig::load(path)?;
                let base = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                    _ => PathBuf::from("."),
                };
                Loaded {
                    config,
                    source: path.display().to_string(),
                    base_dir: std::fs::canonicalize(&base).unwrap_or(base),
                }
            }
            None => Loaded {
                config: HarnessConfig::default_config()?,
                source: "built-in default".to_owned(),
                base_dir: std::fs::canonicalize(".").unwrap_or_else(|_| PathBuf::from(".")),
            },
        })
    }
}

/// What the command line asks of a run, beyond the config (the flags of `echo-harness run`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--quick`: one trial of short runs.
    pub quick: bool,
    /// `--trials`.
    pub trials: Option<u32>,
    /// `--duration`.
    pub duration: Option<std::time::Duration>,
    /// `--only`: these servers.
    pub only: Vec<String>,
    /// `--label`.
    pub label: Option<String>,
    /// `--retry-noisy`.
    pub retry_noisy: u32,
    /// `--allow-remote`.
    pub allow_remote: bool,
    /// `--out`.
    pub out: PathBuf,
    /// `--bin-dir`.
    pub bin_dir: Option<PathBuf>,
    /// `echo-harness capacity`: every block is a capacity search.
    pub capacity_only: bool,
}

/// What a run will do, resolved from flags and config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration (after overrides).
    pub config: HarnessConfig,
    /// Where the config came from.
    pub config_source: String,
    /// Folder that relative server commands and `cwd` are resolved against.
    pub base_dir: PathBuf,
    /// `--quick`.
    pub quick: bool,
    /// The cells run at fixed loads (after the capacity searches, when a cell's rate is a
    /// fraction of a capacity).
    pub cells: Vec<Cell>,
    /// The loads searched for their capacity, first.
    pub targets: Vec<Cell>,
    /// Server CPUs.
    pub server_cpus: CpuSet,
    /// Client CPUs.
    pub client_cpus: CpuSet,
    /// Rounds of re-running noisy cells.
    pub retry_noisy: u32,
    /// Servers may announce non-loopback addresses.
    pub allow_remote: bool,
    /// The harness command line.
    pub command_line: Vec<String>,
    /// Folder under which the run folder is created.
    pub out: PathBuf,
    /// Suffix of the run folder's name (checked).
    pub label: Option<String>,
    /// `--bin-dir`.
    pub bin_dir: Option<PathBuf>,
    /// Things worth saying before the run (e.g. server and client share CPUs).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Trials the fixed-load cells run in all (each cell its block's number, or `[run]`'s).
    pub fn trial_count(&self) -> usize {
        crate::matrix::total_trials(&self.cells, &self.config.run)
    }

    /// Applies the flags to the loaded config and checks the result, given the CPUs this
    /// process may use. No I/O.
    pub fn resolve(
        args: &Overrides,
        loaded: Loaded,
        allowed_cpus: &[usize],
        command_line: Vec<String>,
    ) -> anyhow::Result<Plan> {
        let Loaded {
            mut config,
            source,
            base_dir,
        } = loaded;
        if args.quick {
            config = config.quick();
        }
        if args.capacity_only {
            config = config.capacity_only();
        }
        if let Some(trials) = args.trials {
            if trials == 0 {
                bail!("--trials must be at least 1");
            }
            config.clear_block_timing();
            config.run.trials = trials;
        }
        if let Some(duration) = args.duration {
            config.clear_block_timing();
            config.run.duration = duration;
        }
        if !args.only.is_empty() {
            if let Some(unknown) = args
                .only
                .iter()
                .find(|n| !config.servers.iter().any(|s| &s.name == *n))
            {
                bail!("--only names `{unknown}`, which is not a configured server");
            }
            config.servers.retain(|s| args.only.contains(&s.name));
            for m in &mut config.matrices {
                if let Some(names) = &mut m.servers {
                    names.retain(|n| args.only.contains(n));
                }
            }
        }
        if let Some(label) = &args.label
            && (label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            bail!(
                "--label `{label}` must be non-empty and use only letters, digits, `-`, `_` and `.`"
            );
        }
        let cells = matrix::cells(&config);
        let targets = matrix::targets(&config);
        if cells.is_empty() && targets.is_empty() {
            bail!("the matrix has no cells for the selected servers");
        }
        if let Some(orphan) = cells
            .iter()
            .find(|c| c.of_capacity.is_some() && !targets.contains(&c.shape()))
        {
            bail!(
                "the cell `{orphan}` runs at a fraction of a capacity that no `capacity = true` block searches; add a capacity block with connections = [{}], size = [{}] and roundtrips = [{}] for server `{}`",
                orphan.connections,
                orphan.size,
                orphan.roundtrips,
                orphan.server
            );
        }
        let allowed = CpuSet::new(allowed_cpus.to_vec());
        let (default_server, default_client) = CpuSet::split(&allowed);
        let server_cpus = match &config.run.server_cpus {
            Some(list) => CpuSet::parse(list).context("[run] server_cpus")?,
            None => default_server,
        };
        let client_cpus = match &config.run.client_cpus {
            Some(list) => CpuSet::parse(list).context("[run] client_cpus")?,
            None => default_client,
        };
        server_cpus
            .check_within(&allowed)
            .context("[run] server_cpus")?;
        client_cpus
            .check_within(&allowed)
            .context("[run] client_cpus")?;
        let mut warnings = Vec::new();
        if server_cpus
            .cpus()
            .iter()
            .any(|c| client_cpus.cpus().contains(c))
        {
            warnings.push(format!(
                "server and client share CPUs {server_cpus} / {client_cpus}; results will mix their costs"
            ));
        }
        Ok(Plan {
            config,
            config_source: source,
            base_dir,
            quick: args.quick,
            cells,
            targets,
            server_cpus,
            client_cpus,
            retry_noisy: args.retry_noisy,
            allow_remote: args.allow_remote,
            command_line,
            out: args.out.clone(),
            label: args.label.clone(),
            bin_dir: args.bin_dir.clone(),
            warnings,
        })
    }
}

/// A plan with what it needs from the machine: binaries and a run folder.
#[derive(Debug)]
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    /// The echo binaries.
    pub bins: Binaries,
    /// The run folder (created when the run starts).
    pub out_dir: PathBuf,
}

/// Finds (or builds) the binaries and picks the run folder.
pub fn prepare(plan: Plan) -> anyhow::Result<Prepared> {
    let bins = binaries::locate(plan.bin_dir.as_deref()).map_err(anyhow::Error::msg)?;
    let date: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect();
    let name = run_name(
        &date,
        &Machine::read().hostname,
        &Revision::read(Path::new(".")).short(),
        plan.label.as_deref(),
    );
    let mut out_dir = plan.out.join(&name);
    let mut n = 2;
    while out_dir.exists() {
        out_dir = plan.out.join(format!("{name}-{n}"));
        n += 1;
    }
    Ok(Prepared {
        plan,
        bins,
        out_dir,
    })
}

/// `<date>-<host>-<gitsha>[-label]`, the host reduced to letters, digits and `-`.
fn run_name(date: &str, host: &str, revision: &str, label: Option<&str>) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{date}-{host}-{revision}");
    if let Some(label) = label {
        name.push('-');
        name.push_str(label);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(overrides: &Overrides, cpus: &[usize]) -> anyhow::Result<Plan> {
        let loaded = Loaded {
            config: HarnessConfig::default_config().unwrap(),
            source: "built-in default".to_owned(),
            base_dir: PathBuf::from("/nowhere"),
        };
        Plan::resolve(overrides, loaded, cpus, vec!["echo-harness".to_owned()])
    }

    /// Overrides apply, CPUs split in halves, and nothing on the machine is touched.
    #[test]
    fn resolves_overrides() {
        let overrides = Overrides {
            quick: true,
            trials: Some(2),
            only: vec!["tcp".to_owned(), "hyper".to_owned()],
            label: Some("x.1".to_owned()),
            ..Overrides::default()
        };
        let plan = resolve(&overrides, &[0, 1, 2, 3]).unwrap();
        assert_eq!(plan.config.run.trials, 2);
        assert!(plan.quick);
        assert!(
            plan.cells
                .iter()
                .all(|c| c.server == "tcp" || c.server == "hyper")
        );
        assert_eq!(plan.server_cpus.to_string(), "0-1");
        assert_eq!(plan.client_cpus.to_string(), "2-3");
        assert!(plan.warnings.is_empty());
        assert_eq!(plan.base_dir, PathBuf::from("/nowhere"));
        assert_eq!(plan.label.as_deref(), Some("x.1"));
    }

    /// Each bad combination is refused with a message naming the flag.
    #[test]
    fn refuses_bad_flags() {
        let cases = [
            (
                Overrides {
                    trials: Some(0),
                    ..Overrides::default()
                },
                "--trials must be at least 1",
            ),
            (
                Overrides {
                    only: vec!["nginx".to_owned()],
                    ..Overrides::default()
                },
                "--only names `nginx`",
            ),
            (
                Overrides {
                    label: Some("a/b".to_owned()),
                    ..Overrides::default()
                },
                "--label `a/b`",
            ),
        ];
        for (overrides, needle) in cases {
            let err = format!("{:#}", resolve(&overrides, &[0, 1]).unwrap_err());
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    /// With one CPU, server and client share it, and the plan says so.
    #[test]
    fn warns_about_shared_cpus() {
        let plan = resolve(&Overrides::default(), &[0]).unwrap();
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].contains("share CPUs"),
            "{:?}",
            plan.warnings
        );
    }

    /// Run folders are named by date, host (sanitized), revision and label.
    #[test]
    fn run_names() {
        assert_eq!(
            run_name("2026-12-01", "my.host", "abc1234", Some("peers")),
            "2026-12-01-my_host-abc1234-peers"
        );
        assert_eq!(run_name("2026-12-01", "h", "abc", None), "2026-12-01-h-abc");
    }
}
