//! Machine-readable outputs of a run: the JSON report, a one-row CSV, and the HdrHistogram
//! interval log. Files are written to a temporary name and renamed into place, so a reader
//! (or a crash) never sees half a file.

pub mod csv;
pub mod hdrlog;
pub mod json;

use std::io::Write;
use std::path::Path;

pub use echobench_core::fs::write_atomically;
use echobench_core::report::Report;

/// Where a finished report goes: `--json`, `--csv` and the human summary.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// `--json FILE`; `-` is stdout (the summary then goes to stderr, so stdout stays JSON).
    pub json: Option<&'a Path>,
    /// `--csv FILE`.
    pub csv: Option<&'a Path>,
    /// `--quiet`: no summary at all.
    pub quiet: bool,
}

impl Outputs<'_> {
    /// Writes every output of `report` (all of them, even after one fails); the error names
    /// the outputs that could not be written.
    pub fn write(&self, report: &Report) -> Result<(), String> {
        let mut failed = Vec::new();
        let to_stdout = self.json.is_some_and(|p| p == Path::new("-"));
        if let Some(path) = self.json {
            let written = if to_stdout {
                report
                    .to_json()
                    .map_err(std::io::Error::other)
                    .and_then(|text| {
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(text.as_bytes())?;
                        stdout.write_all(b"\n")?;
                        stdout.flush()
                    })
            } else {
                json::write(report, path)
            };
            if let Err(err) = written {
                failed.push(format!("cannot write --json {}: {err}", path.display()));
            }
        }
        if let Some(path) = self.csv
            && let Err(err) = csv::write(report, path)
        {
            failed.push(format!("cannot write --csv {}: {err}", path.display()));
        }
        if !self.quiet {
            let text = crate::summary::render(report);
            let _ = if to_stdout {
                std::io::stderr().lock().write_all(text.as_bytes())
            } else {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
            };
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
