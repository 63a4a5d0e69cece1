//! `[client] hosts`: every trial's load split over several hosts. Host I of N runs
//! `echo-client ... --shard I/N --start-at T --json -` through the configured launcher (OpenSSH,
//! pdsh, `ip netns exec`, `kubectl exec`: anything that runs a command on a host and passes its
//! stdout back), so no daemon of ours runs anywhere; the shards' reports come back on stdout,
//! are kept beside the trial's report, and are merged exactly into it
//! ([`echobench_core::shard::merge`]). Nothing is copied to the hosts: echo-client must be
//! installed there (`bin`). A host that fails fails the trial, with its stderr.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use echobench_core::Report;
use echobench_core::exit::client as exit;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::client::Outcome;
use crate::cpuset::CpuSet;
use crate::process;

/// The largest report read from a host (a report of a day at one histogram per second is far
/// smaller): a host that sends more is broken, not trusted.
const MAX_REPORT_BYTES: u64 = 256 << 20;

/// The most of a host's stderr kept for the error message.
const MAX_STDERR_BYTES: u64 = 64 << 10;

/// `[client]`: where echo-client runs. Without `hosts`, one echo-client here, pinned to the
/// client CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    /// Hosts that each run one shard of every trial (`--shard I/N`, in this order), all
    /// starting the load at one instant (`--start-at`); their reports are merged exactly.
    pub hosts: Vec<String>,
    /// How to run a command on a host, `{host}` replaced by its name, the echo-client command
    /// appended: e.g. `["ssh", "{host}"]` or `["pdsh", "-N", "-w", "{host}"]`.
    pub launcher: Vec<String>,
    /// echo-client's path on the hosts [default: this harness's echo-client path, for hosts
    /// that share its file system].
    pub bin: Option<String>,
    /// The launcher hands the command to a shell on the host (as ssh and pdsh do), so each
    /// argument is quoted for a POSIX shell; `false` for launchers that run the arguments as
    /// given (`ip netns exec`, `docker exec`, `kubectl exec --`).
    pub shell: bool,
    /// Time every host gets to start its echo-client (an SSH connection, a container exec)
    /// before the load starts.
    #[serde(with = "crate::config::duration")]
    pub lead: Duration,
}

impl Default for ClientSection {
    fn default() -> Self {
        ClientSection {
            hosts: Vec::new(),
            launcher: Vec::new(),
            bin: None,
            shell: true,
            lead: Duration::from_secs(3),
        }
    }
}

impl ClientSection {
    /// The load is split over hosts.
    pub fn remote(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Checks the section; the message names the field to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            if !self.launcher.is_empty() || self.bin.is_some() {
                return Err(
                    "[client] launcher and bin need hosts (the hosts to run echo-client on)".into(),
                );
            }
            return Ok(());
        }
        if let Some(host) = self
            .hosts
            .iter()
            .find(|h| h.is_empty() || h.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "[client] hosts: `{host}` is not a host name (empty or with spaces)"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.hosts.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(format!(
                "[client] hosts: `{twice}` is listed twice; each host runs one shard"
            ));
        }
        if !self.launcher.iter().any(|a| a.contains("{host}")) {
            return Err(
                "[client] launcher must name `{host}` (e.g. [\"ssh\", \"{host}\"]): it is how each host is reached"
                    .into(),
            );
        }
        if self.lead.is_zero() {
            return Err("[client] lead must be greater than zero (e.g. \"3s\")".into());
        }
        Ok(())
    }

    /// The command that runs `args` (echo-client's arguments, shard and start included) on
    /// `host` with echo-client at `bin`.
    pub fn command(&self, host: &str, bin: &str, args: &[String]) -> Vec<String> {
        let mut argv: Vec<String> = self
            .launcher
            .iter()
            .map(|a| a.replace("{host}", host))
            .collect();
        let remote = std::iter::once(bin.to_owned()).chain(args.iter().cloned());
        if self.shell {
            argv.extend(remote.map(|a| shell_quote(&a)));
        } else {
            argv.extend(remote);
        }
        argv
    }
}

/// `text` as one word for a POSIX shell: unchanged when it is made of characters no shell
/// treats specially, otherwise in single quotes (a `'` inside as `'\''`).
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The arguments host `index` (from 0) of `count` gets: the trial's, its report to stdout,
/// its shard, and the instant the load starts.
pub fn shard_arguments(
    args: &[String],
    index: usize,
    count: usize,
    start: SystemTime,
) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        out.push(arg.clone());
        if arg == "--json" {
            iter.next();
            out.push("-".to_owned());
        }
    }
    let at = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    out.extend([
        "--shard".to_owned(),
        format!("{}/{count}", index + 1),
        "--start-at".to_owned(),
        format!("{at:.6}"),
    ]);
    out
}

/// What one host's echo-client produced.
struct HostRun {
    host: String,
    /// Its report, or why there is none.
    report: Result<Report, String>,
}

/// Runs the trial's echo-client `args` as one shard on every host, merges their reports into
/// `json` (each shard's kept beside it as `<name>.shard-I.json`), and reads it back like a
/// local run's. The launchers run pinned to `cpus`, each in its own process group.
pub async fn run(
    section: &ClientSection,
    local_client: &Path,
    args: &[String],
    cpus: &CpuSet,
    json: &Path,
    limit: Duration,
    interrupt: &CancellationToken,
) -> Outcome {
    let bin = section
        .bin
        .clone()
        .unwrap_or_else(|| local_client.display().to_string());
    let warmup = warmup_of(args);
    let start = SystemTime::now() + section.lead + warmup;
    let count = section.hosts.len();
    // The first host that fails stops the others' launchers: the trial has failed already.
    let stop = interrupt.child_token();
    let mut launched = tokio::task::JoinSet::new();
    for (i, host) in section.hosts.iter().enumerate() {
        let argv = section.command(host, &bin, &shard_arguments(args, i, count, start));
        let (host, cpus, stop) = (host.clone(), cpus.clone(), stop.clone());
        let limit = limit + section.lead;
        launched.spawn(async move {
            let report = host_report(&argv, &cpus, limit, &stop).await;
            (i, HostRun { host, report })
        });
    }
    let mut runs: Vec<Option<HostRun>> = (0..count).map(|_| None).collect();
    let mut first_failure: Option<String> = None;
    while let Some(joined) = launched.join_next().await {
        if let Ok((i, mut run)) = joined {
            if run.report.is_err() {
                match &first_failure {
                    None if !interrupt.is_cancelled() => {
                        first_failure = Some(run.host.clone());
                        stop.cancel();
                    }
                    Some(first) => {
                        run.report = Err(format!("stopped, as host {first} had failed"));
                    }
                    None => {}
                }
            }
            runs[i] = Some(run);
        }
    }
    let runs = runs.into_iter().enumerate().map(|(i, run)| {
        run.unwrap_or_else(|| HostRun {
            host: section.hosts[i].clone(),
            report: Err("its launcher task ended without a result".to_owned()),
        })
    });
    let mut reports = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for (i, run) in runs.enumerate() {
        match run.report {
            Ok(report) => {
                let shard = json.with_extension(format!("shard-{}.json", i + 1));
                if let Ok(text) = report.to_json() {
                    let _ = echobench_core::fs::write_atomically(&shard, text.as_bytes());
                }
                reports.push((
                    format!("host {} (shard {}/{count})", run.host, i + 1),
                    report,
                ));
            }
            Err(reason) => failures.push(format!(
                "host {} (shard {}/{count}): {reason}",
                run.host,
                i + 1
            )),
        }
    }
    if !failures.is_empty() {
        if interrupt.is_cancelled() {
            return Outcome::Interrupted;
        }
        return Outcome::Failed(failures.join("\n"));
    }
    let merged = match echobench_core::shard::merge(&reports, false) {
        Ok(merged) => merged,
        Err(err) => return Outcome::Failed(format!("the hosts' reports do not merge: {err}")),
    };
    let written = merged
        .to_json()
        .map_err(|err| err.to_string())
        .and_then(|text| {
            echobench_core::fs::write_atomically(json, text.as_bytes()).map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => Outcome::Report(Box::new(merged)),
        Err(err) => Outcome::Failed(format!("cannot write {}: {err}", json.display())),
    }
}

/// The `--warmup` among echo-client's arguments (zero when absent or unreadable).
fn warmup_of(args: &[String]) -> Duration {
    args.iter()
        .position(|a| a == "--warmup")
        .and_then(|i| args.get(i + 1))
        .and_then(|w| humantime::parse_duration(w).ok())
        .unwrap_or_default()
}

/// Runs one host's launcher command; its stdout is the shard's report.
async fn host_report(
    argv: &[String],
    cpus: &CpuSet,
    limit: Duration,
    interrupt: &CancellationToken,
) -> Result<Report, String> {
    let shown = argv.join(" ");
    let (mut child, pgid) = process::spawn(argv, cpus, Stdio::piped())?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = tokio::spawn(read_bounded(stdout, MAX_REPORT_BYTES));
    let read_err = tokio::spawn(read_bounded(stderr, MAX_STDERR_BYTES));
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        () = interrupt.cancelled() => {
            process::signal_group(pgid, Signal::SIGTERM);
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await.ok().and_then(Result::ok)
        }
        () = tokio::time::sleep(limit) => {
            process::signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
            return Err(format!("did not finish within {}", humantime::format_duration(limit)));
        }
    };
    let (stdout, too_long) = read_out.await.unwrap_or_default();
    let (stderr, _) = read_err.await.unwrap_or_default();
    let code = status.and_then(|s| s.code());
    let stderr = String::from_utf8_lossy(&stderr);
    if !exit::reported(code) {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
            stderr.trim()
        ));
    }
    if too_long {
        return Err(format!(
            "its report is larger than {MAX_REPORT_BYTES} bytes; it is not an echo-client report"
        ));
    }
    let text = String::from_utf8_lossy(&stdout);
    Report::from_json(&text).map_err(|err| {
        format!(
            "what it printed is not an echo-client report ({err}); does `{shown}` run echo-client 0.1 or later? stderr: {}",
            stderr.trim()
        )
    })
}

/// Reads `from` to its end, keeping at most `max` bytes; says whether there was more.
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(
    from: Option<R>,
    max: u64,
) -> (Vec<u8>, bool) {
    let Some(from) = from else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut limited = from.take(max);
    let _ = limited.read_to_end(&mut kept).await;
    let mut rest = limited.into_inner();
    // Drain the rest so the host's command is never blocked on a full pipe.
    let mut more = false;
    let mut sink = [0u8; 8192];
    while let Ok(n) = rest.read(&mut sink).await {
        if n == 0 {
            break;
        }
        more = true;
    }
    (kept, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments with shell characters are quoted; plain ones are not.
    #[test]
    fn quoting() {
        let cases = [
            ("ws://10.0.0.1:8080/ws", "ws://10.0.0.1:8080/ws"),
            ("p99<2ms,errors<0.1%", "'p99<2ms,errors<0.1%'"),
            ("it's", r"'it'\''s'"),
            ("", "''"),
            ("a b", "'a b'"),
        ];
        for (text, quoted) in cases {
            assert_eq!(shell_quote(text), quoted, "{text}");
        }
    }

    /// Each host gets its shard, the shared start and its report on stdout; the launcher's
    /// `{host}` is filled in and, for a shell, the arguments quoted.
    #[test]
    fn commands() {
        let args: Vec<String> = ["ws://h/ws", "--json", "/tmp/t.json", "--slo", "p99<1ms"]
            .map(String::from)
            .into();
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let shard = shard_arguments(&args, 1, 3, start);
        assert_eq!(
            shard,
            [
                "ws://h/ws",
                "--json",
                "-",
                "--slo",
                "p99<1ms",
                "--shard",
                "2/3",
                "--start-at",
                "1700000000.250000"
            ]
        );
        let ssh = ClientSection {
            hosts: vec!["w1".into()],
            launcher: vec!["ssh".into(), "-p".into(), "22".into(), "{host}".into()],
            ..ClientSection::default()
        };
        assert_eq!(
            ssh.command("w1", "/opt/echo-client", &shard[3..5]),
            [
                "ssh",
                "-p",
                "22",
                "w1",
                "/opt/echo-client",
                "--slo",
                "'p99<1ms'"
            ]
        );
        let netns = ClientSection {
            shell: false,
            launcher: vec!["ip".into(), "netns".into(), "exec".into(), "{host}".into()],
            ..ssh
        };
        assert_eq!(
            netns.command("w1", "echo-client", &shard[3..5]),
            [
                "ip",
                "netns",
                "exec",
                "w1",
                "echo-client",
                "--slo",
                "p99<1ms"
            ]
        );
    }

    /// Bad sections are refused, naming the field.
    #[test]
    fn validation() {
        let ok = ClientSection {
            hosts: vec!["a".into(), "b".into()],
            launcher: vec!["ssh".into(), "{host}".into()],
            ..ClientSection::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ClientSection::default().validate(), Ok(()));
        let cases = [
            (
                ClientSection {
                    hosts: vec![],
                    ..ok.clone()
                },
                "need hosts",
            ),
            (
                ClientSection {
                    hosts: vec!["a".into(), "a".into()],
                    ..ok.clone()
                },
                "listed twice",
            ),
            (
                ClientSection {
                    launcher: vec!["ssh".into()],
                    ..ok.clone()
                },
                "must name `{host}`",
            ),
            (
                ClientSection {
                    hosts: vec!["a b".into()],
                    ..ok.clone()
                },
                "not a host name",
            ),
            (
                ClientSection {
                    lead: Duration::ZERO,
                    ..ok
                },
                "lead must be",
            ),
        ];
        for (section, expected) in cases {
            let err = section.validate().unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
