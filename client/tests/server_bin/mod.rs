//! The `echo-server` binary, for tests that need the real server process (killed mid-run,
//! several SO_REUSEPORT processes): built once per test binary into this profile's folder.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Its path, after `cargo build -p echo-server` (once).
pub fn path() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "echo-server",
                "--bin",
                "echo-server",
            ])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building echo-server failed");
        // echo-client, which these tests run, is built into the same folder.
        Path::new(env!("CARGO_BIN_EXE_echo-client")).with_file_name("echo-server")
    })
}
