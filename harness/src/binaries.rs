//! Finding `echo-server` and `echo-client`. They are looked for next to the harness binary
//! (`target/release/` under cargo). When the harness itself runs under `cargo run`, it first
//! asks cargo to build them in the same profile: otherwise a changed server could be benchmarked
//! from a stale binary, and the results would describe code that no longer exists.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// Their folder (the `{bin}` placeholder).
    pub dir: PathBuf,
    /// `echo-server`.
    pub server: PathBuf,
    /// `echo-client`.
    pub client: PathBuf,
}

/// Locates the binaries in `explicit` or next to this executable, building them first when
/// running under cargo.
pub fn locate(explicit: Option<&Path>) -> Result<Binaries, String> {
    let dir = match explicit {
        // Absolute, so that `{bin}` means the same folder whatever a server's `cwd` is (a
        // relative command is resolved against the config's folder).
        Some(dir) => {
            std::path::absolute(dir).map_err(|err| format!("--bin-dir {}: {err}", dir.display()))?
        }
        None => {
            let exe = std::env::current_exe()
                .map_err(|err| format!("cannot find the harness's own path: {err}"))?;
            let dir = exe.parent().map(Path::to_owned).unwrap_or_default();
            if let Some(cargo) = std::env::var_os("CARGO") {
                build_siblings(Path::new(&cargo), &dir)?;
            }
            dir
        }
    };
    let binaries = Binaries {
        server: dir.join("echo-server"),
        client: dir.join("echo-client"),
        dir,
    };
    for path in [&binaries.server, &binaries.client] {
        if !path.is_file() {
            return Err(format!(
                "{} not found; build it with `cargo build --release --workspace` or pass --bin-dir",
                path.display()
            ));
        }
    }
    Ok(binaries)
}

/// `cargo build` of echo-server and echo-client in the profile whose folder is `dir`.
fn build_siblings(cargo: &Path, dir: &Path) -> Result<(), String> {
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "-p",
        "echo-server",
        "-p",
        "echo-client",
        "--bins",
    ]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => {
            command.arg("--release");
        }
        Some("debug") => {
            eprintln!(
                "warning: benchmarking debug builds; use `cargo run --release -p echo-harness`"
            );
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => {}
    }
    let status = command
        .status()
        .map_err(|err| format!("cannot run cargo to build echo-server and echo-client: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building echo-server and echo-client failed ({status})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative --bin-dir is made absolute against the working directory, so `{bin}` does
    /// not move with a config's folder or a server's `cwd`.
    #[test]
    fn relative_bin_dir_is_absolute() {
        let err = locate(Some(Path::new("no-such-bin-dir"))).unwrap_err();
        let expected = std::env::current_dir()
            .unwrap()
            .join("no-such-bin-dir")
            .join("echo-server");
        assert!(
            err.starts_with(&format!("{} not found", expected.display())),
            "{err}"
        );
    }
}
