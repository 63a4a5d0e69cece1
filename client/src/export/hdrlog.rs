//! `--hdr-log FILE`: an HdrHistogram interval log (the format HdrHistogram's own tools,
//! HistogramLogAnalyzer and `hdr-plot`, read), one round-trip interval per second of the
//! measured window, in nanoseconds; in open-loop mode each second also has a `corrected`
//! interval. Intervals are written as the seconds complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

/// An open interval log.
pub struct HdrLog {
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for HdrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrLog").finish_non_exhaustive()
    }
}

impl HdrLog {
    /// Creates the log with its header; interval timestamps count from `start`.
    pub fn create(path: &Path, start: SystemTime) -> io::Result<HdrLog> {
        let mut file = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("echo-client interval log: round-trip latency in nanoseconds, one interval per second of the measured window")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut serializer)
            .map_err(io::Error::other)?;
        writeln!(
            file,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(HdrLog { file, serializer })
    }

    /// Appends second `index` (lasting `duration`).
    pub fn interval(
        &mut self,
        index: u32,
        duration: Duration,
        round_trip: &Histogram<u64>,
        corrected: Option<&Histogram<u64>>,
    ) -> io::Result<()> {
        // A builder with no headers writes nothing when it begins; it only lends the writer.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(io::Error::other)?;
        let start = Duration::from_secs(u64::from(index));
        writer
            .write_histogram(round_trip, start, duration, None)
            .map_err(|err| io::Error::other(err.to_string()))?;
        if let Some(corrected) = corrected {
            writer
                .write_histogram(corrected, start, duration, Tag::new("corrected"))
                .map_err(|err| io::Error::other(err.to_string()))?;
        }
        self.file.flush()
    }

    /// Flushes the log to disk.
    pub fn finish(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
/// `--hdr-log` of a run whose timeline was merged from workers (`--processes`), written
/// from that timeline at the end (a single process writes it as the seconds complete).
pub fn write_timeline(path: &Path, report: &echobench_core::report::Report) -> Result<(), String> {
    let fail = |err: io::Error| format!("cannot write --hdr-log {}: {err}", path.display());
    let started =
        humantime::parse_rfc3339(&report.started_at).unwrap_or_else(|_| SystemTime::now());
    let mut log = HdrLog::create(path, started).map_err(fail)?;
    for second in &report.timeline {
        log.interval(
            second.index,
            second.duration,
            &second.round_trip,
            second.corrected.as_ref(),
        )
        .map_err(fail)?;
    }
    log.finish().map_err(fail)
}
