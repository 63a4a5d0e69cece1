//! `echo-server IMPL --processes P`: one server as P processes listening on one address with
//! `SO_REUSEPORT`, the way multi-process servers are deployed, so that the address can hold
//! more connections than one process may open files for. This process binds first (learning
//! the port when `--addr` has port 0), starts P-1 copies of itself bound to the same address,
//! serves as the P-th, and prints the ready line once every copy has printed its own. SIGINT
//! or SIGTERM stops them all; a copy that exits on its own stops the rest and fails the server.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use echo_servers::{Impl, Options, PemFiles};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

/// How long a copy has to print its ready line.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How long the copies have to stop after SIGTERM before they are killed.
const STOP_WITHIN: Duration = Duration::from_secs(6);

/// Flags of this process's command line that its copies get otherwise (their value follows
/// them, or is joined with `=`).
const REPLACED: [&str; 7] = [
    "--processes",
    "--addr",
    "--threads",
    "--cert-out",
    "--cert",
    "--key",
    "-t",
];

/// The copies' command line: this one's, less what [`REPLACED`] names and `--tls` (a copy
/// serves the certificate this process made, from files).
pub(crate) fn copy_args(argv: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut skip_value = false;
    for arg in argv {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--tls" {
            continue;
        }
        if REPLACED.contains(&text.as_ref()) {
            skip_value = true;
            continue;
        }
        let joined = REPLACED.iter().any(|flag| {
            text.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('=') || (*flag == "-t" && !rest.is_empty()))
        });
        if !joined {
            out.push(arg.clone());
        }
    }
    out
}

/// Sends SIGTERM to `pids`.
fn terminate(pids: &[u32]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for &pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

/// Serves `implementation` on `addr` as `processes` processes of `threads` threads each,
/// until `signals` ends (SIGINT/SIGTERM) or a copy exits.
pub(crate) async fn serve(
    implementation: Impl,
    addr: SocketAddr,
    options: Options,
    processes: u32,
    threads: usize,
    signals: impl std::future::Future<Output = ()>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = echo_servers::bind_shared(addr).with_context(|| {
        format!("cannot listen on {addr}; pick another address or port with --addr")
    })?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let scratch = echobench_core::copies::Scratch::create("echo-server")
        .context("cannot create a folder for the server processes")?;
    let mut extra: Vec<OsString> = vec![
        "--addr".into(),
        local.to_string().into(),
        "--reuseport".into(),
        "--threads".into(),
        threads.to_string().into(),
    ];
    if let Some(identity) = &options.tls {
        let files = PemFiles::in_dir(scratch.path());
        identity
            .write(&files)
            .context("cannot write the certificate for the server's other processes")?;
        extra.extend(["--cert".into(), files.cert.into_os_string()]);
        extra.extend(["--key".into(), files.key.into_os_string()]);
    }
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = copy_args(&argv);
    let exe = std::env::current_exe().context("cannot find this program to start its copies")?;
    let mut copies = tokio::task::JoinSet::new();
    let mut pids = Vec::new();
    for copy in 1..processes {
        let mut child = tokio::process::Command::new(&exe)
            .args(&args)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start server process {}", copy + 1))?;
        pids.push(child.id().unwrap_or_default());
        let stdout = child
            .stdout
            .take()
            .context("no stdout from a server process")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_WITHIN, lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line.starts_with("listening ") => {}
            other => {
                terminate(&pids);
                let status = tokio::time::timeout(STOP_WITHIN, child.wait()).await;
                bail!(
                    "server process {} of {processes} did not become ready ({}; exit: {status:?}); its stderr is above",
                    copy + 1,
                    match other {
                        Err(_) => format!("no ready line within {}s", READY_WITHIN.as_secs()),
                        Ok(Ok(Some(line))) => format!("it printed `{line}`"),
                        Ok(Ok(None)) => "it closed stdout".to_owned(),
                        Ok(Err(err)) => format!("reading its stdout: {err}"),
                    }
                );
            }
        }
        copies.spawn(async move { (copy + 1, child.wait().await) });
    }

    let tls = options.tls.is_some();
    let server = tokio::spawn(implementation.serve(listener, options, shutdown.clone()));
    crate::cli::announce(&implementation.url(local, tls));
    tracing::info!(%implementation, %local, processes, threads, "serving");

    let outcome: anyhow::Result<()> = tokio::select! {
        () = signals => Ok(()),
        Some(exited) = copies.join_next() => Err(match exited {
            Ok((copy, status)) => anyhow::anyhow!(
                "server process {copy} of {processes} exited ({}) while serving; its stderr is above",
                status.map_or_else(|e| e.to_string(), |s: ExitStatus| s.to_string())
            ),
            Err(err) => anyhow::anyhow!("waiting for a server process failed: {err}"),
        }),
    };
    shutdown.cancel();
    terminate(&pids);
    let stopped = tokio::time::timeout(STOP_WITHIN, async {
        while let Some(exited) = copies.join_next().await {
            if let Ok((copy, Ok(status))) = exited
                && !status.success()
            {
                tracing::warn!(copy, %status, "a server process did not stop cleanly");
            }
        }
    })
    .await;
    if stopped.is_err() {
        // Dropping the children kills them (kill_on_drop).
        copies.abort_all();
    }
    drop(scratch);
    let served = server
        .await
        .context("the server task failed")?
        .context("the server stopped with an error");
    outcome.and(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies get every flag but those they are given otherwise, in both spellings.
    #[test]
    fn copies_keep_the_rest() {
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &[
                    "tungstenite",
                    "--processes",
                    "4",
                    "--addr",
                    "127.0.0.1:0",
                    "--ws-read-buffer",
                    "4096",
                ],
                &["tungstenite", "--ws-read-buffer", "4096"],
            ),
            (
                &[
                    "tcp",
                    "--processes=2",
                    "--addr=127.0.0.1:9000",
                    "-t2",
                    "--delay",
                    "1ms",
                ],
                &["tcp", "--delay", "1ms"],
            ),
            (
                &[
                    "hyper",
                    "--tls",
                    "--cert-out",
                    "ca.pem",
                    "-t",
                    "1",
                    "--threads=3",
                ],
                &["hyper"],
            ),
            (
                &[
                    "axum",
                    "--cert",
                    "c.pem",
                    "--key",
                    "k.pem",
                    "--header-timeout",
                    "2s",
                ],
                &["axum", "--header-timeout", "2s"],
            ),
        ];
        for (given, expected) in cases {
            let argv: Vec<OsString> = given.iter().map(OsString::from).collect();
            let got: Vec<String> = copy_args(&argv)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got, expected, "{given:?}");
        }
    }
}
