//! `deploy/kubernetes/`: the Indexed Job, rendered as `run.sh` renders it, and each pod's
//! command run here as Kubernetes would run it (`/bin/sh -c` with the container's environment
//! and `JOB_COMPLETION_INDEX` 0 to N-1), against a loopback server with a scaled-down load;
//! then the merge step. Checked: the shards cover the load exactly once (every shard once,
//! connections and rate adding up to the test's) and merge into the test's report.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use echo_client::Report;
use echo_servers::{Fixture, Impl};

const BIN: &str = env!("CARGO_BIN_EXE_echo-client");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The manifest with `@START_AT@` replaced, as `run.sh` does it.
fn render(start_at: u64) -> serde_yaml::Value {
    let text = std::fs::read_to_string(deploy().join("echo-client-job.yaml")).unwrap();
    assert_eq!(text.matches("@START_AT@").count(), 1, "one placeholder");
    let script = std::fs::read_to_string(deploy().join("run.sh")).unwrap();
    assert!(
        script.contains("s/@START_AT@/"),
        "run.sh fills the placeholder in"
    );
    serde_yaml::from_str(&text.replace("@START_AT@", &start_at.to_string())).unwrap()
}

/// The pods of the Job, run here as the kubelet would run them, their stdout collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_covers_the_load_exactly_once() {
    let srv = Fixture::builder(Impl::Tungstenite).start().await.unwrap();
    let start_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let job = render(start_at);
    let spec = &job["spec"];
    assert_eq!(job["kind"], "Job");
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["backoffLimit"], 0, "a failed shard is not run again");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    let mut env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let shards: u64 = env["SHARDS"].parse().unwrap();
    assert_eq!(spec["completions"], shards, "completions == SHARDS");
    assert_eq!(spec["parallelism"], shards, "parallelism == SHARDS");
    assert_eq!(env["START_AT"], start_at.to_string());
    // What a user changes: the target and the size of the test (scaled down to run here).
    for (name, value) in [
        ("TARGET", srv.url()),
        ("CONNECTIONS", "40".to_owned()),
        ("RATE", "400".to_owned()),
        ("DURATION", "1s".to_owned()),
        ("WARMUP", "500ms".to_owned()),
        ("CONNECT_RATE", "4000".to_owned()),
    ] {
        assert!(env.contains_key(name), "the manifest sets {name}");
        env.insert(name.to_owned(), value);
    }
    let command: Vec<&str> = container["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let script = container["args"][0].as_str().unwrap();
    assert_eq!(command, ["/bin/sh", "-c"]);
    // echo-client on the PATH, as in the image.
    let path = format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pods: Vec<_> = (0..shards)
        .map(|index| {
            Command::new(command[0])
                .arg(command[1])
                .arg(script)
                .env_clear()
                .envs(&env)
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", index.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for (index, pod) in pods.into_iter().enumerate() {
        let output = pod.wait_with_output().unwrap();
        assert!(output.status.success(), "pod {index}: {output:?}");
        // `kubectl logs` is stdout and stderr together: nothing but the report.
        assert!(output.stderr.is_empty(), "pod {index}: {output:?}");
        let report = Report::from_json(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
        let shard = report.config.shard.clone().unwrap();
        assert_eq!(shard.count as u64, shards);
        seen.push(shard.index);
        assert_eq!(report.summary.errors, 0, "pod {index}: {:?}", report.errors);
        let file = dir.path().join(format!("shard-{}.json", index + 1));
        std::fs::write(&file, &output.stdout).unwrap();
        files.push((file, report));
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=shards as u32).collect::<Vec<_>>(),
        "every shard once"
    );
    let connections: u32 = files.iter().map(|(_, r)| r.config.connections).sum();
    let rate: f64 = files.iter().filter_map(|(_, r)| r.config.rate).sum();
    assert_eq!(connections, 40);
    assert!((rate - 400.0).abs() < 1e-9, "{rate}");

    // The merge step, as run.sh runs it.
    let merged = dir.path().join("test.json");
    let status = Command::new(BIN)
        .arg("merge")
        .args(files.iter().map(|(f, _)| f))
        .args(["--json", merged.to_str().unwrap(), "--quiet"])
        .status()
        .unwrap();
    assert!(status.success());
    let merged = Report::from_json(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(merged.config.connections, 40);
    assert_eq!(merged.config.rate, Some(400.0));
    assert_eq!(merged.workers.as_ref().unwrap().count as u64, shards);
    assert_eq!(
        merged.summary.round_trips,
        files
            .iter()
            .map(|(_, r)| r.summary.round_trips)
            .sum::<u64>()
    );
    assert!(merged.summary.round_trips > 0);
    // Each shard says how far from START_AT its window opened.
    assert!(files.iter().all(|(_, r)| r.start_offset_s.is_some()));
}
