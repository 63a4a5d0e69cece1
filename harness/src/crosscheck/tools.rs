//! The load tools the crosscheck runs, how each is invoked, and how its structured result is
//! read: echo-client's JSON report, wrk's `done()` JSON line (scripts/wrk/report.lua), oha's
//! JSON, the peer clients' and echo-pingpong's JSON line, and — h2load having no structured
//! output — its two summary lines.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Which comparison a tool belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// HTTP `POST /echo` on the hyper server.
    Http,
    /// The same over TLS (`echo-server hyper --tls`, connections kept).
    Https,
    /// WebSocket echo on the tungstenite server.
    WebSocket,
    /// One TCP connection on the tcp server: the latency floor.
    Floor,
}

impl Group {
    /// Every group, in the order tables show them.
    pub const ALL: [Group; 4] = [Group::Http, Group::Https, Group::WebSocket, Group::Floor];

    /// The reference server for the group.
    pub fn server(self) -> &'static str {
        match self {
            Group::Http | Group::Https => "hyper",
            Group::WebSocket => "tungstenite",
            Group::Floor => "tcp",
        }
    }

    /// Whether its server serves TLS (`--tls --cert-out {ca}`; tools trust `{ca}`).
    pub fn tls(self) -> bool {
        self == Group::Https
    }

    /// Its name for `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Group::Http => "http",
            Group::Https => "https",
            Group::WebSocket => "websocket",
            Group::Floor => "floor",
        }
    }

    /// A title for tables.
    pub fn title(self) -> &'static str {
        match self {
            Group::Http => "HTTP: POST /echo, 32 B, on echo-server hyper",
            Group::Https => {
                "HTTPS: POST /echo, 32 B, on echo-server hyper --tls (TLS 1.3, connections kept)"
            }
            Group::WebSocket => "WebSocket: 32 B binary messages, on echo-server tungstenite",
            Group::Floor => "Latency floor: one TCP connection, 32 B, on echo-server tcp",
        }
    }
}

/// How a tool's output is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// echo-client's `--json` report at this path.
    EchoClient(PathBuf),
    /// A line `ECHOBENCH_JSON {...}` on stdout (our wrk script).
    WrkJson,
    /// oha's `--output-format json` on stdout.
    OhaJson,
    /// One JSON line on stdout with round_trips, seconds, round_trips_per_s, errors, p50_us, p99_us.
    JsonLine,
    /// h2load's text summary.
    H2load,
}

/// One tool, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Display name.
    pub name: String,
    /// Its group.
    pub group: Group,
    /// Program and arguments; `{url}` is replaced by the server's URL at run time.
    pub argv: Vec<String>,
    /// How to read its result.
    pub output: Output,
}

/// What a tool measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Completed round trips (requests).
    pub round_trips: u64,
    /// Throughput.
    pub rps: f64,
    /// Median latency, if the tool reports it.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, if the tool reports it.
    pub p99_us: Option<f64>,
    /// Failed requests.
    pub errors: u64,
}

/// Reads a tool's result from its stdout (or its report file).
pub fn parse(output: &Output, stdout: &str) -> Result<Measured, String> {
    match output {
        Output::EchoClient(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("no report at {}: {err}", path.display()))?;
            let report = echobench_core::Report::from_json(&text).map_err(|err| err.to_string())?;
            let p = report.latency.round_trip;
            Ok(Measured {
                round_trips: report.summary.round_trips,
                rps: report.summary.round_trips_per_s,
                p50_us: (p.count > 0).then(|| p.p50 as f64 / 1000.0),
                p99_us: (p.count > 0).then(|| p.p99 as f64 / 1000.0),
                errors: report.summary.errors,
            })
        }
        Output::WrkJson => {
            let line = stdout
                .lines()
                .find_map(|l| l.strip_prefix("ECHOBENCH_JSON "))
                .ok_or("wrk printed no ECHOBENCH_JSON line (is scripts/wrk/report.lua in use?)")?;
            let v: Value = serde_json::from_str(line).map_err(|err| format!("wrk JSON: {err}"))?;
            Ok(Measured {
                round_trips: number(&v, "requests")? as u64,
                rps: number(&v, "rps")?,
                p50_us: v.get("p50_us").and_then(Value::as_f64),
                p99_us: v.get("p99_us").and_then(Value::as_f64),
                errors: number(&v, "errors")? as u64,
            })
        }
        Output::OhaJson => {
            let start = stdout.find('{').ok_or("oha printed no JSON")?;
            let v: Value =
                serde_json::from_str(&stdout[start..]).map_err(|err| format!("oha JSON: {err}"))?;
            let summary = v.get("summary").ok_or("oha JSON has no summary")?;
            let ok = v
                .get("statusCodeDistribution")
                .and_then(Value::as_object)
                .map_or(0, |codes| {
                    codes
                        .iter()
                        .filter(|(c, _)| c.starts_with('2'))
                        .filter_map(|(_, n)| n.as_u64())
                        .sum()
                });
            let errors = v
                .get("errorDistribution")
                .and_then(Value::as_object)
                .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
            let percentile = |key: &str| {
                v.get("latencyPercentiles")
                    .and_then(|p| p.get(key))
                    .and_then(Value::as_f64)
                    .map(|s| s * 1e6)
            };
            Ok(Measured {
                round_trips: ok,
                rps: number(summary, "requestsPerSec")?,
                p50_us: percentile("p50"),
                p99_us: percentile("p99"),
                errors,
            })
        }
        Output::JsonLine => {
            let line = stdout
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with('{'))
                .ok_or("no JSON line on stdout")?;
            let v: Value = serde_json::from_str(line).map_err(|err| format!("JSON line: {err}"))?;
            Ok(Measured {
                round_trips: number(&v, "round_trips")? as u64,
                rps: number(&v, "round_trips_per_s")?,
                p50_us: v.get("p50_us").and_then(Value::as_f64),
                p99_us: v.get("p99_us").and_then(Value::as_f64),
                errors: number(&v, "errors")? as u64,
            })
        }
        Output::H2load => parse_h2load(stdout),
    }
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no numeric `{key}`"))
}

/// Reads `finished in 10.00s, 95123.40 req/s, ...` and `requests: N total, ..., S succeeded,
/// F failed, E errored, T timeout`.
pub fn parse_h2load(stdout: &str) -> Result<Measured, String> {
    let finished = stdout
        .lines()
        .find(|l| l.starts_with("finished in "))
        .ok_or("h2load printed no `finished in` line")?;
    let rps = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("cannot read req/s from `{finished}`"))?;
    let requests = stdout
        .lines()
        .find(|l| l.starts_with("requests: "))
        .ok_or("h2load printed no `requests:` line")?;
    let count = |word: &str| -> Result<u64, String> {
        requests
            .trim_start_matches("requests: ")
            .split(", ")
            .find_map(|part| {
                part.strip_suffix(word)
                    .map(str::trim)
                    .and_then(|n| n.parse().ok())
            })
            .ok_or_else(|| format!("cannot read `{word}` from `{requests}`"))
    };
    Ok(Measured {
        round_trips: count(" succeeded")?,
        rps,
        p50_us: None,
        p99_us: None,
        errors: count(" failed")? + count(" errored")? + count(" timeout")?,
    })
}

/// The tools of each group, given where things are; tools that are not installed are left out
/// with a notice explaining how to get them.
pub fn catalogue(
    bins: &Path,
    peers: &Path,
    scripts: &Path,
    out: &Path,
    connections: u32,
    seconds: u64,
) -> (Vec<Tool>, Vec<String>) {
    let mut tools = Vec::new();
    let mut notices = Vec::new();
    let c = connections.to_string();
    let s = seconds.to_string();
    let body = out.join("body-32.bin");
    let strings = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<Vec<String>>()
    };
    let echo_client = |group: Group, connections: &str, report: &str| Tool {
        name: "echo-client".to_owned(),
        group,
        argv: {
            let mut argv = vec![bins.join("echo-client").display().to_string()];
            argv.extend(strings(&[
                "{url}",
                "-c",
                connections,
                "-r",
                "0",
                "-s",
                "32",
                "-d",
                &format!("{s}s"),
                "--warmup",
                "0s",
                "-t",
                "1",
                "--json",
            ]));
            argv.push(out.join(report).display().to_string());
            argv.extend(strings(&["--quiet", "--no-progress"]));
            if group.tls() {
                argv.extend(strings(&["--cacert", "{ca}"]));
            }
            argv
        },
        output: Output::EchoClient(out.join(report)),
    };
    let wrk = which("wrk");
    let h2load = which("h2load");
    let oha = which("oha");
    // The HTTP tools over plaintext, then over TLS: wrk's TLS is OpenSSL, oha's rustls,
    // h2load's OpenSSL (wrk and h2load do not verify certificates; oha and echo-client trust
    // the server's {ca}).
    for group in [Group::Http, Group::Https] {
        let report = if group.tls() {
            "echo-client-https.json"
        } else {
            "echo-client-http.json"
        };
        tools.push(echo_client(group, &c, report));
        if let Some(wrk) = &wrk {
            tools.push(Tool {
                name: "wrk -t1".to_owned(),
                group,
                argv: vec![
                    wrk.clone(),
                    "-t1".into(),
                    format!("-c{c}"),
                    format!("-d{s}s"),
                    "-s".into(),
                    scripts.join("wrk/post-echo.lua").display().to_string(),
                    "{base}/".into(),
                ],
                output: Output::WrkJson,
            });
        }
        if let Some(h2load) = &h2load {
            tools.push(Tool {
                name: "h2load --h1".to_owned(),
                group,
                argv: vec![
                    h2load.clone(),
                    "--h1".into(),
                    "-c".into(),
                    c.clone(),
                    "-t".into(),
                    "1".into(),
                    "-D".into(),
                    s.clone(),
                    "-d".into(),
                    body.display().to_string(),
                    "-H".into(),
                    "content-type: application/octet-stream".into(),
                    "{url}".into(),
                ],
                output: Output::H2load,
            });
        }
        if let Some(oha) = &oha {
            let mut argv = vec![
                oha.clone(),
                "-c".into(),
                c.clone(),
                "-z".into(),
                format!("{s}s"),
                "-m".into(),
                "POST".into(),
                "-D".into(),
                body.display().to_string(),
                "-T".into(),
                "application/octet-stream".into(),
                "--no-tui".into(),
                "--output-format".into(),
                "json".into(),
            ];
            if group.tls() {
                argv.extend(["--cacert".into(), "{ca}".into()]);
            }
            argv.push("{url}".into());
            tools.push(Tool {
                name: "oha".to_owned(),
                group,
                argv,
                output: Output::OhaJson,
            });
        }
    }
    if wrk.is_none() {
        notices.push("wrk skipped: not installed (apt-get install wrk)".to_owned());
    }
    if h2load.is_none() {
        notices.push("h2load skipped: not installed (apt-get install nghttp2-client)".to_owned());
    }
    if oha.is_none() {
        notices.push("oha skipped: not installed (cargo install oha --locked)".to_owned());
    }
    tools.push(echo_client(Group::WebSocket, &c, "echo-client-ws.json"));
    let run_peer = peers.join("run.sh");
    let peers_installed = run_peer.is_file()
        && peers
            .parent()
            .is_some_and(|root| root.join("target/peers").is_dir());
    for (name, peer) in [
        ("node ws client", "node-ws-client"),
        ("python websockets client", "python-websockets-client"),
    ] {
        if peers_installed {
            tools.push(Tool {
                name: name.to_owned(),
                group: Group::WebSocket,
                argv: vec![
                    run_peer.display().to_string(),
                    peer.to_owned(),
                    "{url}".into(),
                    "-c".into(),
                    c.clone(),
                    "-r".into(),
                    "0".into(),
                    "-d".into(),
                    s.clone(),
                    "-s".into(),
                    "32".into(),
                    "--warmup".into(),
                    "0".into(),
                ],
                output: Output::JsonLine,
            });
        } else {
            notices.push(format!(
                "{name} skipped: peers not installed (run peers/install.sh)"
            ));
        }
    }
    tools.push(echo_client(Group::Floor, "1", "echo-client-floor.json"));
    tools.push(Tool {
        name: "echo-pingpong (blocking)".to_owned(),
        group: Group::Floor,
        argv: vec![
            bins.join("echo-pingpong").display().to_string(),
            "{url}".into(),
            s.clone(),
            "32".into(),
        ],
        output: Output::JsonLine,
    });
    (tools, notices)
}

/// The path of `program` on PATH, if it is there.
pub fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
            .map(|path| path.display().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// h2load's summary lines give throughput, successes and failures.
    #[test]
    fn reads_h2load() {
        let text = "starting benchmark...\nfinished in 10.00s, 95123.40 req/s, 13.42MB/s\n\
                    requests: 951234 total, 951298 started, 951234 done, 951230 succeeded, 4 failed, 0 errored, 0 timeout\n";
        let m = parse_h2load(text).unwrap();
        assert_eq!((m.round_trips, m.errors), (951_230, 4));
        assert!((m.rps - 95_123.4).abs() < 1e-9);
        assert!(parse_h2load("nothing useful").is_err());
    }

    /// The wrk script's line and a peer's JSON line are read by key.
    #[test]
    fn reads_json_outputs() {
        let wrk = "Running 10s test\nECHOBENCH_JSON {\"requests\":1000,\"seconds\":10.0,\"rps\":100.0,\"bytes\":1,\"errors\":2,\"p50_us\":500,\"p90_us\":600,\"p99_us\":900,\"p999_us\":1000,\"max_us\":2000}\n";
        let m = parse(&Output::WrkJson, wrk).unwrap();
        assert_eq!((m.round_trips, m.errors, m.p99_us), (1000, 2, Some(900.0)));
        let line = "log noise\n{\"tool\":\"x\",\"round_trips\":50,\"seconds\":1.0,\"round_trips_per_s\":50.0,\"errors\":0,\"p50_us\":10.5,\"p99_us\":20.0,\"max_us\":30.0}\n";
        let m = parse(&Output::JsonLine, line).unwrap();
        assert_eq!((m.round_trips, m.rps, m.p50_us), (50, 50.0, Some(10.5)));
        let oha = r#"{"summary":{"successRate":1.0,"total":10.0,"requestsPerSec":1234.5},"latencyPercentiles":{"p50":0.0005,"p99":0.002},"statusCodeDistribution":{"200":12345},"errorDistribution":{"aborted due to deadline":64}}"#;
        let m = parse(&Output::OhaJson, oha).unwrap();
        assert_eq!((m.round_trips, m.errors), (12_345, 64));
        assert!((m.p50_us.unwrap() - 500.0).abs() < 1e-6);
    }
}
