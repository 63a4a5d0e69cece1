//! The files of a run folder, rewritten (atomically: temporary file, then rename) after every
//! trial so that a crash or an interrupt at any instant leaves complete files behind:
//! `raw.csv`, `summary.csv`, `comparison.csv`, `summary.md`, `throughput.svg`, `p99.svg` and
//! `manifest.json` (plus the per-trial client reports in `trials/`).

pub mod capacity;
pub mod charts;
pub mod comparison;
pub mod manifest;
pub mod markdown;
pub mod raw;
pub mod summary;

use std::io;
use std::path::Path;

pub use echobench_core::fs::write_atomically;

/// Formats an optional number with `decimals` places, or an empty cell.
pub(crate) fn num(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map(|v| format!("{v:.decimals$}"))
        .unwrap_or_default()
}

/// Nanoseconds as microseconds with 3 decimals.
pub(crate) fn micros(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1000.0)
}

/// Writes `header` and `rows` as CSV to `path`, atomically.
pub(crate) fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(io::Error::other)?;
    for row in rows {
        writer.write_record(row).map_err(io::Error::other)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|err| io::Error::other(err.to_string()))?;
    write_atomically(path, &bytes)
}
