//! Machine-readable outputs of a run: the JSON report, a one-row CSV, and the HdrHistogram
//! interval log. Files are written to a temporary name and renamed into place, so a reader
//! (or a crash) never sees half a file.

pub mod csv;
pub mod hdrlog;
pub mod json;

pub use echobench_core::fs::write_atomically;
