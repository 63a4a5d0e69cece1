//! The harness over real hosts: four network namespaces on a bridge, on a subnet this test
//! makes up, with no route anywhere else. The server runs in one, an OpenSSH server in each
//! of two "worker hosts", and echo-harness in the fourth launches one echo-client shard on
//! each worker over SSH (`[client] hosts`, `launcher = ["ssh", ...]`, keys made here), then
//! merges their reports. Checked: the merged report is the sum of the workers' reports, the
//! server accepted every connection the workers opened, and a server outside loopback is
//! refused without `--allow-remote`.
//!
//! Needs root, `ip` (iproute2) and OpenSSH (`.ci/run` installs openssh-server).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{HARNESS, bin_dir, marker, processes_with, run_dir};
use echobench_core::Report;

/// Runs `argv`, failing the test with its stderr if it fails.
fn run(argv: &[&str]) -> String {
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|err| panic!("cannot run {argv:?}: {err}"));
    assert!(
        output.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The namespaces, the bridge and the SSH servers of one test, removed when it ends.
struct Hosts {
    prefix: String,
    subnet: String,
    namespaces: Vec<String>,
    sshd: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Hosts {
    /// Namespaces `<prefix>-<name>` for `names`, host `k` at `<subnet>.<k + 1>`, all on one
    /// bridge that has no address (so the machine itself has no route into the subnet).
    fn build(names: &[&str]) -> Hosts {
        let pid = std::process::id();
        let prefix = format!("eb{pid}");
        let subnet = format!("10.213.{}", pid % 250 + 1);
        let bridge = format!("{prefix}b");
        let mut hosts = Hosts {
            prefix: prefix.clone(),
            subnet: subnet.clone(),
            namespaces: Vec::new(),
            sshd: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&["ip", "link", "set", &bridge, "up"]);
        for (k, name) in names.iter().enumerate() {
            let ns = format!("{prefix}-{name}");
            run(&["ip", "netns", "add", &ns]);
            hosts.namespaces.push(ns.clone());
            let (inner, outer) = (format!("{prefix}v{k}"), format!("{prefix}p{k}"));
            run(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            run(&["ip", "link", "set", &outer, "master", &bridge, "up"]);
            run(&["ip", "link", "set", &inner, "netns", &ns]);
            let addr = format!("{subnet}.{}/24", k + 1);
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", &inner]);
            run(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            // Only the subnet itself is reachable from inside.
            let routes = run(&["ip", "-n", &ns, "route", "show"]);
            assert!(
                routes
                    .lines()
                    .all(|r| r.starts_with(&format!("{subnet}.0/24"))),
                "{ns} has a route outside its subnet: {routes}"
            );
        }
        hosts
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn addr(&self, k: usize) -> String {
        format!("{}.{}", self.subnet, k + 1)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client key, and an OpenSSH server in namespace `name` (host `k`) that accepts it;
    /// returns once it is listening.
    fn start_sshd(&mut self, name: &str, k: usize) {
        let key = self.path("id");
        if !key.exists() {
            let key = key.to_str().unwrap();
            run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]);
            let host_key = self.path("host_key");
            run(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                host_key.to_str().unwrap(),
            ]);
            std::fs::copy(format!("{key}.pub"), self.path("authorized_keys")).unwrap();
        }
        // The privilege-separation folder sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = self.path(&format!("sshd-{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}:22\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
                 PidFile {dir}/sshd-{name}.pid\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n",
                addr = self.addr(k),
                dir = self.dir.path().display()
            ),
        )
        .unwrap();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(name),
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start sshd (is openssh-server installed?)");
        let stderr = child.stderr.take().unwrap();
        self.sshd.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end, so sshd never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("Server listening") => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("sshd in {name} did not start: {seen:?}"),
            }
        }
    }

    /// `ssh -F` config naming each worker host.
    fn ssh_config(&self, workers: &[(&str, usize)]) -> PathBuf {
        let mut text = String::new();
        for (name, k) in workers {
            text.push_str(&format!("Host {name}\n  HostName {}\n", self.addr(*k)));
        }
        text.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 10\n",
            self.path("id").display()
        ));
        let path = self.path("ssh_config");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in &mut self.sshd {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}b", self.prefix)])
            .status();
    }
}

/// The harness config: `servers` run in the server namespace, the load on two SSH hosts.
fn config(hosts: &Hosts, ssh_config: &Path, marker: &str) -> String {
    let server = |name: &str, implementation: &str, protocol: &str| {
        format!(
            "[[server]]\nname = \"{name}\"\ncommand = [\"ip\", \"netns\", \"exec\", \"{ns}\", \"{{bin}}/echo-server\", \"{implementation}\", \"--addr\", \"{addr}:0\", \"--threads\", \"1\"]\n\
             protocol = \"{protocol}\"\nenv = {{ RUST_LOG = \"info\", ECHOBENCH_TEST_MARKER = \"{marker}\" }}\n",
            ns = hosts.ns("server"),
            addr = hosts.addr(1),
        )
    };
    format!(
        "[run]\nduration = \"1s\"\nwarmup = \"300ms\"\ntrials = 1\ncooldown = \"100ms\"\nredo = 0\n\n{}{}\
         [[matrix]]\nconnections = [10]\nrate = [1000]\n\n\
         [client]\nhosts = [\"w1\", \"w2\"]\nlauncher = [\"ssh\", \"-F\", \"{}\", \"{{host}}\"]\nlead = \"3s\"\n",
        server("tcp", "tcp", "tcp"),
        server("tungstenite", "tungstenite", "websocket"),
        ssh_config.display()
    )
}

/// The connections a server's log says it accepted (summed over its processes).
fn accepted(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("stopped accepting connections"))
        .filter_map(|l| {
            let at = l.find("accepted=")? + "accepted=".len();
            l[at..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Two worker hosts over SSH, one merged report per trial that is the sum of the workers'.
#[test]
fn load_from_two_hosts_over_ssh() {
    let mut hosts = Hosts::build(&["harness", "server", "w1", "w2"]);
    hosts.start_sshd("w1", 2);
    hosts.start_sshd("w2", 3);
    let ssh_config = hosts.ssh_config(&[("w1", 2), ("w2", 3)]);
    let marker = marker("hosts");
    let cfg = hosts.path("hosts.toml");
    std::fs::write(&cfg, config(&hosts, &ssh_config, &marker)).unwrap();
    let harness_with = |cfg: &Path, out: &Path, extra: &[&str]| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.ns("harness"),
                HARNESS,
                "run",
                "--config",
            ])
            .arg(cfg)
            .arg("--out")
            .arg(out)
            .arg("--bin-dir")
            .arg(bin_dir())
            .args(extra)
            .output()
            .unwrap()
    };
    let harness = |out: &Path, extra: &[&str]| harness_with(&cfg, out, extra);

    // A server outside loopback is refused unless --allow-remote says it is meant.
    let refused = harness(&hosts.path("refused"), &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(text.contains("--allow-remote"), "{text}");

    let out = hosts.path("out");
    let output = harness(&out, &["--allow-remote"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        processes_with(&marker).is_empty(),
        "a server outlived its run"
    );
    let run = run_dir(&out);
    let mut trials: Vec<PathBuf> = std::fs::read_dir(run.join("trials"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().contains(".shard-"))
        .collect();
    trials.sort();
    assert_eq!(trials.len(), 2, "{trials:?}");
    for trial in &trials {
        let read =
            |path: &Path| Report::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        let merged = read(trial);
        let shards: Vec<Report> = (1..=2)
            .map(|i| read(&trial.with_extension(format!("shard-{i}.json"))))
            .collect();
        let name = trial.display();
        let workers = merged.workers.as_ref().unwrap();
        assert_eq!(workers.count, 2, "{name}");
        assert!(
            workers.each[0].name.contains("host w1"),
            "{name}: {:?}",
            workers.each[0].name
        );
        assert_eq!(merged.config.connections, 10, "{name}");
        assert_eq!(
            shards
                .iter()
                .map(|s| s.config.connections)
                .collect::<Vec<_>>(),
            [5, 5],
            "{name}"
        );
        let sum = |f: fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
        for (field, get) in [
            (
                "round_trips",
                (|r: &Report| r.summary.round_trips) as fn(&Report) -> u64,
            ),
            ("bytes_sent", |r| r.summary.bytes_sent),
            ("errors", |r| r.summary.errors),
            ("latency samples", |r| r.latency.round_trip.count),
            ("late sends", |r| r.summary.late_sends.unwrap_or_default()),
        ] {
            assert_eq!(get(&merged), sum(get), "{name}: {field}");
        }
        assert!(merged.summary.round_trips > 0, "{name}");
        assert_eq!(merged.summary.errors, 0, "{name}: {:?}", merged.errors);
        // Every connection reached the server: the 10 of the load, one before it on each
        // worker (its reachability check), and the harness's echo check before the trial
        // (a reachability check and the connection that echoes).
        let id = trial.file_stem().unwrap().to_str().unwrap();
        let log = run.join("logs").join(format!("{id}-server.log"));
        assert_eq!(accepted(&log), 10 + 2 + 2, "{name}");
    }

    // A host that cannot be reached fails the trial (exit 3), naming it and with the
    // launcher's stderr; the other host's shard is stopped rather than waited for.
    let broken = hosts.path("broken.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("hosts = [\"w1\", \"w2\"]", "hosts = [\"w1\", \"nosuch\"]");
    std::fs::write(&broken, text).unwrap();
    let out = hosts.path("broken-out");
    let output = harness_with(&broken, &out, &["--allow-remote", "--only", "tcp"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let raw = std::fs::read_to_string(run_dir(&out).join("raw.csv")).unwrap();
    assert!(raw.contains("host nosuch (shard 2/2)"), "{raw}");
    assert!(
        processes_with(&marker).is_empty(),
        "a server outlived its run"
    );
}
