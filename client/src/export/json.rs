//! `--json FILE`: the full [`Report`], pretty-printed.

use std::io;
use std::path::Path;

use echobench_core::report::Report;

/// Writes `report` as JSON to `path` (atomically).
pub fn write(report: &Report, path: &Path) -> io::Result<()> {
    let mut text = report.to_json().map_err(io::Error::other)?;
    text.push('\n');
    super::write_atomically(path, text.as_bytes())
}
