//! `echo-harness compare RUN_A RUN_B`: per-cell throughput change between two runs, each
//! judged with Welch's t-test over the trials (two-sided, α = 0.05) as faster, slower, or no
//! significant difference. Reads `raw.csv`, so any published run can be compared.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::stats::{self, Welch};

/// Significance level.
pub const ALPHA: f64 = 0.05;

/// One cell's trials in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CellTrials {
    /// Readable cell description.
    pub label: String,
    /// Throughput of each ok trial of the latest attempt.
    pub rps: Vec<f64>,
}

/// How a cell changed from run A to run B (Welch's t-test over trials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// B is faster (higher throughput), significantly.
    Faster,
    /// B is slower, significantly.
    Slower,
    /// The difference is within the noise.
    NoSignificantDifference,
    /// Fewer than two trials on a side, or no variance at all: cannot judge.
    CannotJudge,
}

impl Change {
    fn text(self) -> &'static str {
        match self {
            Change::Faster => "faster",
            Change::Slower => "slower",
            Change::NoSignificantDifference => "no significant difference",
            Change::CannotJudge => "cannot judge (too few trials)",
        }
    }
}

/// A cell in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Cell id.
    pub cell: String,
    /// Description.
    pub label: String,
    /// Median throughput in A.
    pub a_median: f64,
    /// Median throughput in B.
    pub b_median: f64,
    /// The test, when it could be made.
    pub welch: Option<Welch>,
    /// The verdict.
    pub verdict: Change,
}

/// Reads the ok trials of the latest attempt of every cell from `run/raw.csv`.
pub fn read_run(run: &Path) -> Result<BTreeMap<String, CellTrials>, String> {
    let path = run.join("raw.csv");
    let mut reader = csv::Reader::from_path(&path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|err| format!("{}: {err}", path.display()))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{}: no `{name}` column; is this an echo-harness run?",
                path.display()
            )
        })
    };
    let (cell, attempt, status, rps) = (
        column("cell_id")?,
        column("attempt")?,
        column("status")?,
        column("round_trips_per_s")?,
    );
    let (server, connections, size, roundtrips, rate) = (
        column("server")?,
        column("connections")?,
        column("size")?,
        column("roundtrips")?,
        column("rate")?,
    );
    let mut rows: Vec<(String, u32, String, f64)> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| format!("{}: {err}", path.display()))?;
        let field = |i: usize| record.get(i).unwrap_or("");
        if field(status) != "ok" {
            continue;
        }
        let Ok(value) = field(rps).parse::<f64>() else {
            continue;
        };
        let mut label = format!(
            "{} c={} size={} r={}",
            field(server),
            field(connections),
            field(size),
            field(roundtrips)
        );
        if !field(rate).is_empty() {
            let _ = write!(label, " rate={}/s", field(rate));
        }
        rows.push((
            field(cell).to_owned(),
            field(attempt).parse().unwrap_or(0),
            label,
            value,
        ));
    }
    let mut cells: BTreeMap<String, CellTrials> = BTreeMap::new();
    let latest: BTreeMap<&str, u32> = rows.iter().fold(BTreeMap::new(), |mut m, (c, a, _, _)| {
        let e = m.entry(c.as_str()).or_insert(*a);
        *e = (*e).max(*a);
        m
    });
    for (cell, attempt, label, value) in &rows {
        if latest.get(cell.as_str()) == Some(attempt) {
            cells
                .entry(cell.clone())
                .or_insert_with(|| CellTrials {
                    label: label.clone(),
                    rps: Vec::new(),
                })
                .rps
                .push(*value);
        }
    }
    Ok(cells)
}

/// Compares the cells two runs share.
pub fn compare(
    a: &BTreeMap<String, CellTrials>,
    b: &BTreeMap<String, CellTrials>,
) -> Vec<Comparison> {
    a.iter()
        .filter_map(|(cell, ta)| {
            let tb = b.get(cell)?;
            let (sa, sb) = (stats::spread(&ta.rps)?, stats::spread(&tb.rps)?);
            let welch = stats::welch(&ta.rps, &tb.rps);
            let verdict = match welch {
                None => Change::CannotJudge,
                Some(w) if w.p < ALPHA && w.t > 0.0 => Change::Faster,
                Some(w) if w.p < ALPHA => Change::Slower,
                Some(_) => Change::NoSignificantDifference,
            };
            Some(Comparison {
                cell: cell.clone(),
                label: ta.label.clone(),
                a_median: sa.median,
                b_median: sb.median,
                welch,
                verdict,
            })
        })
        .collect()
}

/// The comparison as a table.
pub fn render(
    a_name: &str,
    b_name: &str,
    a: &BTreeMap<String, CellTrials>,
    b: &BTreeMap<String, CellTrials>,
) -> String {
    let comparisons = compare(a, b);
    let mut out = String::new();
    let _ = writeln!(out, "A = {a_name}\nB = {b_name}");
    let _ = writeln!(
        out,
        "Throughput per cell: median round trips/s; verdict by Welch's t-test on the trials (two-sided, alpha = {ALPHA}).\n"
    );
    let _ = writeln!(out, "| cell | A rt/s | B rt/s | change | p | verdict |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for c in &comparisons {
        let change = if c.a_median > 0.0 {
            100.0 * (c.b_median - c.a_median) / c.a_median
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {change:+.1}% | {} | {} |",
            c.label,
            c.a_median,
            c.b_median,
            c.welch
                .map_or_else(|| "-".to_owned(), |w| format!("{:.3}", w.p)),
            c.verdict.text()
        );
    }
    for (name, only, other) in [("A", a, b), ("B", b, a)] {
        let missing: Vec<&str> = only
            .keys()
            .filter(|k| !other.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(out, "\nOnly in {name}: {}", missing.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trials(label: &str, rps: &[f64]) -> CellTrials {
        CellTrials {
            label: label.to_owned(),
            rps: rps.to_vec(),
        }
    }

    /// Clear gains and losses are called; overlapping ones are not; single trials cannot be.
    #[test]
    fn verdicts() {
        let a = BTreeMap::from([
            ("up".to_owned(), trials("up", &[100.0, 101.0, 99.0])),
            ("down".to_owned(), trials("down", &[100.0, 101.0, 99.0])),
            ("same".to_owned(), trials("same", &[100.0, 110.0, 90.0])),
            ("one".to_owned(), trials("one", &[100.0])),
            ("gone".to_owned(), trials("gone", &[1.0, 2.0])),
        ]);
        let b = BTreeMap::from([
            ("up".to_owned(), trials("up", &[120.0, 121.0, 119.0])),
            ("down".to_owned(), trials("down", &[80.0, 81.0, 79.0])),
            ("same".to_owned(), trials("same", &[102.0, 95.0, 108.0])),
            ("one".to_owned(), trials("one", &[150.0])),
        ]);
        let verdicts: Vec<(String, Change)> = compare(&a, &b)
            .into_iter()
            .map(|c| (c.cell, c.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("down".to_owned(), Change::Slower),
                ("one".to_owned(), Change::CannotJudge),
                ("same".to_owned(), Change::NoSignificantDifference),
                ("up".to_owned(), Change::Faster),
            ]
        );
        let table = render("a", "b", &a, &b);
        assert!(table.contains("| up | 100 | 120 | +20.0% |"), "{table}");
        assert!(table.contains("Only in A: gone"), "{table}");
    }
}
