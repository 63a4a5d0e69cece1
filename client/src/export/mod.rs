//! Machine-readable outputs of a run: the JSON report, a one-row CSV, and the HdrHistogram
//! interval log. Files are written to a temporary name and renamed into place, so a reader
//! (or a crash) never sees half a file.

pub mod csv;
pub mod hdrlog;
pub mod json;

use std::io;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a sibling temporary file, then a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temporary = file_name.to_os_string();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
