//! The fixture library stays light: a project that adds `echo-servers` as a dev-dependency
//! for its tests compiles the servers and their options, not the `echo-server` command line
//! (no flag parser, no log formatter, no error-reporting crate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// `cargo tree` of the library's normal dependencies names none of the binary's crates.
#[test]
fn the_library_pulls_in_no_command_line() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "echo-servers",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tree.contains("tokio-tungstenite"), "{tree}");
    for binary_only in ["clap ", "tracing-subscriber ", "anyhow "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(binary_only)),
            "echo-servers depends on {binary_only}:\n{tree}"
        );
    }
}
