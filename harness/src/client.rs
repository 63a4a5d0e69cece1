//! Running `echo-client` for one trial: pinned to the client CPUs, in its own process group,
//! with `--json` — the harness reads that structured report, never the human summary. On an
//! interrupt the client gets SIGTERM, which makes it stop and still write its report.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use echobench_core::exit::client as exit;
use echobench_core::{Payload, Report};
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::config::RunSection;
use crate::cpuset::CpuSet;
use crate::hosts::ClientSection;
use crate::matrix::Cell;
use crate::process;

/// The argument list for one trial (also recorded, so any run can be repeated by hand).
pub fn arguments(
    cell: &Cell,
    url: &str,
    run: &RunSection,
    threads: usize,
    json: &Path,
    payload: Payload,
    ca: Option<&Path>,
) -> Vec<String> {
    let mut args = vec![
        url.to_owned(),
        "--connections".into(),
        cell.connections.to_string(),
        "--roundtrips".into(),
        cell.roundtrips.to_string(),
        "--size".into(),
        cell.size.to_string(),
        "--duration".into(),
        humantime::format_duration(run.duration).to_string(),
        "--warmup".into(),
        humantime::format_duration(run.warmup).to_string(),
        "--timeout".into(),
        humantime::format_duration(run.timeout).to_string(),
        "--threads".into(),
        threads.to_string(),
        "--json".into(),
        json.display().to_string(),
        "--quiet".into(),
        "--no-progress".into(),
    ];
    if let Some(rate) = cell.rate {
        args.push("--rate".into());
        args.push(rate.to_string());
        if let Some(spin) = run.pacer_spin {
            args.push("--pacer-spin".into());
            args.push(humantime::format_duration(spin).to_string());
        }
    }
    if let Some(ca) = ca {
        args.push("--cacert".into());
        args.push(ca.display().to_string());
    }
    if cell.tls_resume {
        args.push("--tls-resume".into());
    }
    if payload == Payload::Json {
        args.push("--payload".into());
        args.push("json".into());
    }
    if let Some(publishers) = cell.publishers {
        args.extend([
            "--workload".into(),
            "broadcast".into(),
            "--publishers".into(),
            publishers.to_string(),
        ]);
    }
    args
}

/// What a client run produced.
#[derive(Debug)]
pub enum Outcome {
    /// A report (complete, or covering what ran before an interrupt).
    Report(Box<Report>),
    /// No report; why.
    Failed(String),
    /// Stopped by an interrupt before it could write a report.
    Interrupted,
}

/// Runs the client (here, or one shard on each of `section`'s hosts) and reads its report.
pub async fn run(
    section: &ClientSection,
    client: &Path,
    args: &[String],
    cpus: &CpuSet,
    json: &Path,
    limit: Duration,
    interrupt: &CancellationToken,
) -> Outcome {
    if section.remote() {
        return crate::hosts::run(section, client, args, cpus, json, limit, interrupt).await;
    }
    let mut argv = vec![client.display().to_string()];
    argv.extend_from_slice(args);
    let (mut child, pgid) = match process::spawn(&argv, cpus, Stdio::null()) {
        Ok(started) => started,
        Err(err) => return Outcome::Failed(err),
    };
    let mut stderr = child.stderr.take();
    let collect = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    });
    let mut interrupted = false;
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        () = interrupt.cancelled() => {
            // The client stops, reports what ran, and exits 130.
            interrupted = true;
            process::signal_group(pgid, Signal::SIGTERM);
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await.ok().and_then(Result::ok)
        }
        () = tokio::time::sleep(limit) => {
            process::signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
            return Outcome::Failed(format!(
                "echo-client did not finish within {}",
                humantime::format_duration(limit)
            ));
        }
    };
    let stderr = collect.await.unwrap_or_default();
    let code = status.and_then(|s| s.code());
    if exit::reported(code) {
        match std::fs::read_to_string(json) {
            Ok(text) => match Report::from_json(&text) {
                Ok(report) => Outcome::Report(Box::new(report)),
                Err(err) => Outcome::Failed(format!("unreadable report {}: {err}", json.display())),
            },
            Err(err) => Outcome::Failed(format!("no report at {}: {err}", json.display())),
        }
    } else if interrupted {
        // SIGTERM before it had installed its handlers: nothing ran worth reporting.
        Outcome::Interrupted
    } else {
        Outcome::Failed(format!(
            "echo-client failed ({}): {}",
            code.map_or_else(|| "killed".to_owned(), |c| format!("exit {c}")),
            stderr.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[run] pacer_spin` reaches the open-loop runs only: a closed-loop run has no pacer.
    #[test]
    fn pacer_spin_goes_to_open_loop_runs() {
        let cell = |rate| Cell {
            server_index: 0,
            server: "tcp".to_owned(),
            protocol: echobench_core::Protocol::Tcp,
            connections: 64,
            size: 32,
            roundtrips: 0,
            rate,
            of_capacity: None,
            tls_resume: false,
            publishers: None,
            timing: Default::default(),
        };
        let spin = |run: &RunSection, rate| {
            let args = arguments(
                &cell(rate),
                "tcp://127.0.0.1:1",
                run,
                1,
                Path::new("r.json"),
                Payload::Raw,
                None,
            );
            args.iter()
                .position(|a| a == "--pacer-spin")
                .map(|i| args[i + 1].clone())
        };
        let spinning = RunSection {
            pacer_spin: Some(Duration::from_micros(250)),
            ..RunSection::default()
        };
        let cases = [
            (&spinning, Some(10_000.0), Some("250us")),
            (&spinning, None, None),
            (&RunSection::default(), Some(10_000.0), None),
        ];
        for (run, rate, expected) in cases {
            assert_eq!(spin(run, rate).as_deref(), expected, "{rate:?}");
        }
    }
}
