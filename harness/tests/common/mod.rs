//! Helpers for the harness's end-to-end tests: the binaries it drives, config files, and a
//! check that no server process outlived its run.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const HARNESS: &str = env!("CARGO_BIN_EXE_echo-harness");

/// The folder with echo-server and echo-client, built once per test binary.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "echo-server",
                "-p",
                "echo-client",
                "--bins",
            ])
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "building echo-server and echo-client failed"
        );
        Path::new(HARNESS).parent().unwrap().to_owned()
    })
}

/// A server entry for a reference implementation, tagged with `marker` in its environment.
pub fn server(name: &str, implementation: &str, protocol: &str, marker: &str) -> String {
    format!(
        "[[server]]\nname = \"{name}\"\ncommand = [\"{{bin}}/echo-server\", \"{implementation}\", \"--addr\", \"{{addr}}\", \"--threads\", \"{{threads}}\"]\nprotocol = \"{protocol}\"\nenv = {{ ECHOBENCH_TEST_MARKER = \"{marker}\" }}\n"
    )
}

/// Processes whose environment carries `marker` (servers a test started).
pub fn processes_with(marker: &str) -> Vec<u32> {
    let needle = format!("ECHOBENCH_TEST_MARKER={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// A unique marker per test.
pub fn marker(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// The single run folder under `out`.
pub fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The header and rows of a CSV file.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// The value of `column` in `row`.
pub fn field<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    &row[i]
}

/// Runs `echo-harness [SUBCOMMAND] --config DIR/bench.toml --out DIR/results` with `config`
/// written to that file and the test binaries' folder as `--bin-dir`.
pub fn harness_in(dir: &Path, subcommand: Option<&str>, config: &str) -> std::process::Output {
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(HARNESS);
    if let Some(sub) = subcommand {
        command.arg(sub);
    }
    command
        .arg("--config")
        .arg(&path)
        .arg("--out")
        .arg(dir.join("results"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .output()
        .unwrap()
}
