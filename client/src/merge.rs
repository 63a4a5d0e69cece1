//! `echo-client merge REPORT... [--json OUT] [--csv OUT]`: the `--json` reports of the shards
//! of one test (`--shard 1/N` to `N/N`, from processes, hosts or pods) merged into the report
//! of that test, exactly (see [`echobench_core::shard::merge`]), with its summary on stdout.

use std::io::Read;
use std::path::PathBuf;

use clap::Parser;
use echobench_core::report::Report;

use crate::cli::exit;
use crate::export;

/// Merges the --json reports of a test's shards into the report of the whole test.
///
/// Counts, errors and HDR histograms add exactly (every percentile of the result is the
/// percentile of all the workers' samples together), the per-second timeline is aligned on
/// wall-clock seconds, objectives (--slo) are judged again over the whole test, and each
/// worker's own summary is kept under `workers`. Reports of different configurations, shards
/// missing or given twice are refused, naming the report and the field.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-client merge", version, max_term_width = 100)]
pub struct MergeArgs {
    /// The shards' --json reports, in any order.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,

    /// Write the merged report to FILE (`-`: stdout, the summary then goes to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the merged report's CSV row to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Print nothing on stdout.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The largest report file read (a day at one histogram per second is far less).
const MAX_REPORT_BYTES: u64 = 1 << 30;

/// Reads one report, bounded.
fn read(path: &PathBuf) -> Result<Report, String> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read {name}: {err}"))?;
    let mut text = String::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| format!("cannot read {name}: {err}"))?;
    if text.len() as u64 > MAX_REPORT_BYTES {
        return Err(format!(
            "{name} is larger than {MAX_REPORT_BYTES} bytes: it is not an echo-client report"
        ));
    }
    Report::from_json(&text).map_err(|err| format!("{name}: {err}"))
}

/// Runs `echo-client merge` and returns its exit code: 0, 1 when an output cannot be
/// written, 2 for reports that cannot be read or are not the shards of one test.
pub fn run(args: &MergeArgs) -> u8 {
    let mut reports = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        match read(path) {
            Ok(report) => reports.push((path.display().to_string(), report)),
            Err(message) => {
                eprintln!("Error: {message}");
                return exit::USAGE;
            }
        }
    }
    let merged = match echobench_core::shard::merge(&reports, false) {
        Ok(merged) => merged,
        Err(err) => {
            eprintln!("Error: {err}");
            return exit::USAGE;
        }
    };
    let outputs = export::Outputs {
        json: args.json.as_deref(),
        csv: args.csv.as_deref(),
        quiet: args.quiet,
    };
    match outputs.write(&merged) {
        Ok(()) => exit::OK,
        Err(message) => {
            eprintln!("Error: {message}");
            exit::FAILURE
        }
    }
}
