//! What a program that runs as several copies of itself needs (`echo-client --processes`,
//! `echo-server --processes`): a private folder the parent hands files to its copies in, and
//! each copy's tie to its parent, so that no copy outlives the process that started it.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A folder of the parent's (mode 0700, under the temporary folder), removed with everything
/// in it when this value is dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `<tmp>/<prefix>-<pid>-<nanos>`.
    pub fn create(prefix: &str) -> io::Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Scratch(path))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks the kernel to send this process SIGTERM when the process that started it exits (even
/// by SIGKILL, when it cannot stop its copies itself); an error if that cannot be asked or
/// the parent has already gone, so the copy does not start at all.
pub fn end_with_parent() -> Result<(), String> {
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|err| format!("cannot tie this process to the one that started it: {err}"))?;
    if nix::unistd::getppid() != parent {
        return Err("the process that started this one has exited".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folder is private, and gone with everything in it once dropped.
    #[test]
    fn scratch_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::create("echobench-test").unwrap();
        let path = scratch.path().to_owned();
        std::fs::write(path.join("file"), b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(scratch);
        assert!(!path.exists());
    }
}
