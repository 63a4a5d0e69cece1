//! `echo-harness compare RUN_A RUN_B`: what changed between two runs, per cell and per
//! capacity search, each judged with Welch's t-test (two-sided, α = 0.05) over the trials or
//! searches of both runs. Each kind of cell is judged by the figure it is about: closed-loop
//! cells by throughput (faster / slower), fixed-rate cells by the server's CPU per round trip
//! (cheaper / costlier: their throughput is the rate), capacity searches by the capacities the
//! searches found (higher / lower). Reads `raw.csv` and `capacity.csv`, so any published run
//! can be compared; trials marked `redone` are left out.
//!
//! `--repro` asks instead whether B reproduces A: each server's capacity as a ratio to the
//! `tcp` server's at the same load within 3%, and each fixed-rate cell's server CPU per round
//! trip within 2%, the targets a published headline must meet.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::stats::{self, Welch};

/// Significance level.
pub const ALPHA: f64 = 0.05;

/// `--repro`: largest change of a capacity ratio to tcp that still reproduces.
pub const REPRO_CAPACITY: f64 = 0.03;

/// `--repro`: largest change of a server's CPU per round trip that still reproduces.
pub const REPRO_COST: f64 = 0.02;

/// What a cell is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Capacity under the SLO, round trips/s (higher is better), one value per search.
    Capacity,
    /// Server CPU µs per round trip at a fixed rate (lower is better), one value per trial.
    Cost,
    /// Closed-loop throughput, round trips/s (higher is better), one value per trial.
    Throughput,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::Capacity | Metric::Throughput => "rt/s",
            Metric::Cost => "µs/rt",
        }
    }

    fn higher_is_better(self) -> bool {
        self != Metric::Cost
    }

    fn words(self) -> (&'static str, &'static str) {
        match self {
            Metric::Capacity => ("higher capacity", "lower capacity"),
            Metric::Cost => ("cheaper", "costlier"),
            Metric::Throughput => ("faster", "slower"),
        }
    }
}

/// One cell's (or capacity search's) values in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CellTrials {
    /// Readable description.
    pub label: String,
    /// What the values are.
    pub metric: Metric,
    /// One value per counted trial of the latest attempt, or per search.
    pub values: Vec<f64>,
    /// The server, and its load without the server (to find `tcp`'s at the same load).
    pub server: String,
    /// The load, as a key shared by the servers that ran it.
    pub load: String,
    /// A capacity's headline figure as published (`capacity_rps`: the fit over its probes, or
    /// the mean of its searches), which `--repro` checks; `None` for trials.
    pub headline: Option<f64>,
}

/// How a cell changed from run A to run B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// B is better (faster, cheaper, higher capacity), significantly.
    Better,
    /// B is worse, significantly.
    Worse,
    /// The difference is within the noise.
    NoSignificantDifference,
    /// Fewer than two values on a side, or no variance at all: cannot judge.
    CannotJudge,
}

/// A cell in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Key (cell id, or `capacity:<target>`).
    pub cell: String,
    /// Description.
    pub label: String,
    /// What is compared.
    pub metric: Metric,
    /// Median in A.
    pub a_median: f64,
    /// Median in B.
    pub b_median: f64,
    /// The test, when it could be made.
    pub welch: Option<Welch>,
    /// The verdict.
    pub verdict: Change,
}

impl Comparison {
    /// The verdict in the metric's words.
    pub fn verdict_text(&self) -> &'static str {
        let (better, worse) = self.metric.words();
        match self.verdict {
            Change::Better => better,
            Change::Worse => worse,
            Change::NoSignificantDifference => "no significant difference",
            Change::CannotJudge => "cannot judge (too few values)",
        }
    }
}

/// Reads a run folder: every cell's counted trials of its latest attempt from `raw.csv`, and
/// every capacity search from `capacity.csv` when there is one.
pub fn read_run(run: &Path) -> Result<BTreeMap<String, CellTrials>, String> {
    let mut cells = read_raw(&run.join("raw.csv"))?;
    let capacity = run.join("capacity.csv");
    if capacity.is_file() {
        cells.extend(read_capacity(&capacity)?);
    }
    Ok(cells)
}

/// A CSV file's rows as maps from column to value.
fn rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|err| format!("{}: {err}", path.display()))?
        .clone();
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|err| format!("{}: {err}", path.display()))?;
            Ok(headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect())
        })
        .collect()
}

fn read_raw(path: &Path) -> Result<BTreeMap<String, CellTrials>, String> {
    let rows = rows(path)?;
    let need = [
        "cell_id",
        "attempt",
        "status",
        "round_trips_per_s",
        "server",
        "connections",
        "size",
        "roundtrips",
        "rate",
    ];
    if let Some(first) = rows.first()
        && let Some(missing) = need.iter().find(|c| !first.contains_key(**c))
    {
        return Err(format!(
            "{}: no `{missing}` column; is this an echo-harness run?",
            path.display()
        ));
    }
    let get =
        |row: &BTreeMap<String, String>, name: &str| row.get(name).cloned().unwrap_or_default();
    let latest: BTreeMap<String, u32> = rows.iter().fold(BTreeMap::new(), |mut m, row| {
        let attempt = get(row, "attempt").parse().unwrap_or(0);
        let e = m.entry(get(row, "cell_id")).or_insert(attempt);
        *e = (*e).max(attempt);
        m
    });
    let mut cells: BTreeMap<String, CellTrials> = BTreeMap::new();
    for row in &rows {
        let cell = get(row, "cell_id");
        // `redone` is absent from runs published before it existed: every trial counted.
        if get(row, "status") != "ok"
            || !get(row, "redone").is_empty()
            || latest.get(&cell).copied() != get(row, "attempt").parse().ok()
        {
            continue;
        }
        let rate = get(row, "rate");
        let share = get(row, "rate_of_capacity");
        let (metric, value) = if rate.is_empty() {
            (Metric::Throughput, get(row, "round_trips_per_s"))
        } else {
            (Metric::Cost, get(row, "server_cpu_us_per_round_trip"))
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let mut load = format!(
            "c={} size={} r={}",
            get(row, "connections"),
            get(row, "size"),
            get(row, "roundtrips")
        );
        match (share.is_empty(), rate.is_empty()) {
            (false, _) => {
                let _ = write!(load, " rate={share} of capacity");
            }
            (true, false) => {
                let _ = write!(load, " rate={rate}/s");
            }
            (true, true) => {}
        }
        if get(row, "tls_resume") == "true" {
            load.push_str(" tls-resume");
        }
        let server = get(row, "server");
        cells
            .entry(cell)
            .or_insert_with(|| CellTrials {
                label: format!("{server} {load}"),
                metric,
                values: Vec::new(),
                server,
                load,
                headline: None,
            })
            .values
            .push(value);
    }
    Ok(cells)
}

fn read_capacity(path: &Path) -> Result<BTreeMap<String, CellTrials>, String> {
    let mut cells = BTreeMap::new();
    for row in rows(path)? {
        let get = |name: &str| row.get(name).cloned().unwrap_or_default();
        let ends: Vec<String> = get("ends").split(';').map(str::to_owned).collect();
        // The searches that converged on their own; lower bounds are not capacities.
        let values: Vec<f64> = get("estimates")
            .split(';')
            .zip(&ends)
            .filter(|(_, end)| *end == "converged")
            .filter_map(|(e, _)| e.parse().ok())
            .collect();
        let scale: f64 = get("per_connection_rate").parse().unwrap_or(1.0);
        let load = match get("connections").as_str() {
            "" => format!(
                "connections at {scale}/s each, size={} r={}",
                get("size"),
                get("roundtrips")
            ),
            c => format!("c={c} size={} r={}", get("size"), get("roundtrips")),
        };
        let server = get("server");
        cells.insert(
            format!("capacity:{server} {load}"),
            CellTrials {
                label: format!("capacity {server} {load}"),
                metric: Metric::Capacity,
                values: values.iter().map(|v| v * scale).collect(),
                headline: get("capacity_rps").parse().ok(),
                server,
                load,
            },
        );
    }
    Ok(cells)
}

/// Compares the cells two runs share.
pub fn compare(
    a: &BTreeMap<String, CellTrials>,
    b: &BTreeMap<String, CellTrials>,
) -> Vec<Comparison> {
    let mut comparisons: Vec<Comparison> = a
        .iter()
        .filter_map(|(cell, ta)| {
            let tb = b.get(cell).filter(|tb| tb.metric == ta.metric)?;
            let (sa, sb) = (stats::spread(&ta.values)?, stats::spread(&tb.values)?);
            let welch = stats::welch(&ta.values, &tb.values);
            let up = |w: &Welch| (w.t > 0.0) == ta.metric.higher_is_better();
            let verdict = match welch {
                None => Change::CannotJudge,
                Some(w) if w.p < ALPHA && up(&w) => Change::Better,
                Some(w) if w.p < ALPHA => Change::Worse,
                Some(_) => Change::NoSignificantDifference,
            };
            Some(Comparison {
                cell: cell.clone(),
                label: ta.label.clone(),
                metric: ta.metric,
                a_median: sa.median,
                b_median: sb.median,
                welch,
                verdict,
            })
        })
        .collect();
    comparisons.sort_by(|x, y| x.metric.cmp(&y.metric).then(x.label.cmp(&y.label)));
    comparisons
}

fn percent_change(a: f64, b: f64) -> f64 {
    if a > 0.0 { 100.0 * (b - a) / a } else { 0.0 }
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
        "Capacity searches by the capacities found (one per search), fixed-rate cells by the server's CPU per round trip, closed-loop cells by throughput (one per trial); medians, and a verdict by Welch's t-test (two-sided, alpha = {ALPHA}).\n"
    );
    let _ = writeln!(out, "| cell | A | B | change | p | verdict |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for c in &comparisons {
        let decimals = if c.metric == Metric::Cost { 2 } else { 0 };
        let unit = c.metric.unit();
        let _ = writeln!(
            out,
            "| {} | {:.decimals$} {unit} | {:.decimals$} {unit} | {:+.1}% | {} | {} |",
            c.label,
            c.a_median,
            c.b_median,
            percent_change(c.a_median, c.b_median),
            c.welch
                .map_or_else(|| "-".to_owned(), |w| format!("{:.3}", w.p)),
            c.verdict_text()
        );
    }
    for (name, only, other) in [("A", a, b), ("B", b, a)] {
        let missing: Vec<&str> = only
            .iter()
            .filter(|(k, _)| !other.contains_key(*k))
            .map(|(_, t)| t.label.as_str())
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(out, "\nOnly in {name}: {}", missing.join(", "));
        }
    }
    out
}

/// One figure of `--repro`: its value in A and B and whether B reproduces A.
#[derive(Debug, Clone, PartialEq)]
pub struct Reproduction {
    /// What it is.
    pub label: String,
    /// The figure in A.
    pub a: f64,
    /// The figure in B.
    pub b: f64,
    /// |B - A| / A.
    pub change: f64,
    /// The largest change that reproduces.
    pub target: f64,
}

impl Reproduction {
    /// Whether B is within the target of A.
    pub fn reproduces(&self) -> bool {
        self.change <= self.target
    }
}

/// The figures `--repro` checks: each server's capacity as a ratio to `tcp`'s at the same load
/// (every server but tcp), and each fixed-rate cell's server CPU per round trip.
pub fn reproductions(
    a: &BTreeMap<String, CellTrials>,
    b: &BTreeMap<String, CellTrials>,
) -> Vec<Reproduction> {
    let median = |t: &CellTrials| stats::spread(&t.values).map(|s| s.median);
    // A capacity's published figure; a run written before capacity_rps was the fit has the
    // mean of its searches there, which is what it published.
    let capacity = |t: &CellTrials| {
        t.headline
            .or_else(|| stats::spread(&t.values).map(|s| s.mean))
    };
    let ratio = |run: &BTreeMap<String, CellTrials>, t: &CellTrials| {
        let floor = run
            .values()
            .find(|f| f.metric == Metric::Capacity && f.server == "tcp" && f.load == t.load)?;
        Some(capacity(t)? / capacity(floor)?.max(f64::MIN_POSITIVE))
    };
    let mut out = Vec::new();
    for (key, ta) in a {
        let Some(tb) = b.get(key).filter(|tb| tb.metric == ta.metric) else {
            continue;
        };
        let figures = match ta.metric {
            Metric::Capacity if ta.server != "tcp" => ratio(a, ta)
                .zip(ratio(b, tb))
                .map(|(x, y)| (format!("{} / tcp", ta.label), x, y, REPRO_CAPACITY)),
            Metric::Cost => median(ta).zip(median(tb)).map(|(x, y)| {
                (
                    format!("{} server CPU per round trip", ta.label),
                    x,
                    y,
                    REPRO_COST,
                )
            }),
            Metric::Capacity | Metric::Throughput => None,
        };
        if let Some((label, x, y, target)) = figures {
            out.push(Reproduction {
                label,
                a: x,
                b: y,
                change: if x > 0.0 {
                    (y - x).abs() / x
                } else {
                    f64::INFINITY
                },
                target,
            });
        }
    }
    out
}

/// `--repro` as a table with a last line saying how many figures reproduce.
pub fn render_repro(
    a_name: &str,
    b_name: &str,
    a: &BTreeMap<String, CellTrials>,
    b: &BTreeMap<String, CellTrials>,
) -> (String, bool) {
    let figures = reproductions(a, b);
    let mut out = String::new();
    let _ = writeln!(out, "A = {a_name}\nB = {b_name}");
    let _ = writeln!(
        out,
        "Does B reproduce A? Capacity as a ratio to tcp's at the same load within {:.0}%, server CPU per round trip at a fixed rate within {:.0}%.\n",
        REPRO_CAPACITY * 100.0,
        REPRO_COST * 100.0
    );
    let _ = writeln!(out, "| figure | A | B | change | target | reproduces |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for f in &figures {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.1}% | {:.0}% | {} |",
            f.label,
            f.a,
            f.b,
            f.change * 100.0,
            f.target * 100.0,
            if f.reproduces() { "yes" } else { "**no**" }
        );
    }
    let good = figures.iter().filter(|f| f.reproduces()).count();
    let _ = writeln!(out, "\n{good} of {} figures reproduce.", figures.len());
    (out, !figures.is_empty() && good == figures.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trials(label: &str, metric: Metric, values: &[f64]) -> CellTrials {
        let (server, load) = label.split_once(' ').unwrap_or((label, ""));
        CellTrials {
            label: label.to_owned(),
            metric,
            values: values.to_vec(),
            server: server.to_owned(),
            load: load.to_owned(),
            headline: None,
        }
    }

    /// Clear gains and losses are called in each metric's direction; overlapping ones are not;
    /// single values cannot be.
    #[test]
    fn verdicts() {
        let t = Metric::Throughput;
        let a = BTreeMap::from([
            ("up".to_owned(), trials("up", t, &[100.0, 101.0, 99.0])),
            ("down".to_owned(), trials("down", t, &[100.0, 101.0, 99.0])),
            ("same".to_owned(), trials("same", t, &[100.0, 110.0, 90.0])),
            ("one".to_owned(), trials("one", t, &[100.0])),
            ("gone".to_owned(), trials("gone", t, &[1.0, 2.0])),
            (
                "cost".to_owned(),
                trials("cost", Metric::Cost, &[10.0, 10.1, 9.9]),
            ),
            (
                "cap".to_owned(),
                trials("cap", Metric::Capacity, &[900.0, 910.0, 905.0]),
            ),
        ]);
        let b = BTreeMap::from([
            ("up".to_owned(), trials("up", t, &[120.0, 121.0, 119.0])),
            ("down".to_owned(), trials("down", t, &[80.0, 81.0, 79.0])),
            ("same".to_owned(), trials("same", t, &[102.0, 95.0, 108.0])),
            ("one".to_owned(), trials("one", t, &[150.0])),
            (
                "cost".to_owned(),
                trials("cost", Metric::Cost, &[10.6, 10.5, 10.4]),
            ),
            (
                "cap".to_owned(),
                trials("cap", Metric::Capacity, &[860.0, 850.0, 855.0]),
            ),
        ]);
        let verdicts: Vec<(String, &str)> = compare(&a, &b)
            .iter()
            .map(|c| (c.cell.clone(), c.verdict_text()))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("cap".to_owned(), "lower capacity"),
                ("cost".to_owned(), "costlier"),
                ("down".to_owned(), "slower"),
                ("one".to_owned(), "cannot judge (too few values)"),
                ("same".to_owned(), "no significant difference"),
                ("up".to_owned(), "faster"),
            ]
        );
        let table = render("a", "b", &a, &b);
        assert!(
            table.contains("| up | 100 rt/s | 120 rt/s | +20.0% |"),
            "{table}"
        );
        assert!(
            table.contains("| cost | 10.00 µs/rt | 10.50 µs/rt | +5.0% |"),
            "{table}"
        );
        assert!(table.contains("Only in A: gone"), "{table}");
    }

    /// `--repro` checks capacity ratios to tcp (3%) and costs (2%), and says which reproduce.
    #[test]
    fn reproduction() {
        let cap = Metric::Capacity;
        let run = |tcp: f64, hyper: f64, cost: f64| {
            BTreeMap::from([
                (
                    "capacity:tcp c=64".to_owned(),
                    trials("tcp c=64", cap, &[tcp, tcp]),
                ),
                (
                    "capacity:hyper c=64".to_owned(),
                    trials("hyper c=64", cap, &[hyper, hyper]),
                ),
                (
                    "hyper-rate".to_owned(),
                    trials("hyper c=64 rate", Metric::Cost, &[cost, cost]),
                ),
            ])
        };
        // tcp moved 10% and hyper with it: the ratio reproduces; the cost moved 1%.
        let (table, all) = render_repro(
            "a",
            "b",
            &run(40_000.0, 20_000.0, 10.0),
            &run(44_000.0, 22_000.0, 10.1),
        );
        assert!(all, "{table}");
        assert!(
            table.contains("| hyper c=64 / tcp | 0.500 | 0.500 | 0.0% | 3% | yes |"),
            "{table}"
        );
        assert!(table.contains("2 of 2 figures reproduce."), "{table}");
        // hyper alone moved 5%, the cost 3%: neither reproduces.
        let (table, all) = render_repro(
            "a",
            "b",
            &run(40_000.0, 20_000.0, 10.0),
            &run(40_000.0, 21_000.0, 10.3),
        );
        assert!(!all);
        assert!(table.contains("0 of 2 figures reproduce."), "{table}");
        // The published capacity (the fit), not the searches' mean, is what is checked.
        let fitted = |tcp: f64, hyper: f64| {
            let mut run = run(40_000.0, 20_000.0, 10.0);
            for (key, value) in [("capacity:tcp c=64", tcp), ("capacity:hyper c=64", hyper)] {
                run.get_mut(key).unwrap().headline = Some(value);
            }
            run
        };
        let (table, _) = render_repro(
            "a",
            "b",
            &fitted(50_000.0, 30_000.0),
            &fitted(50_000.0, 30_600.0),
        );
        assert!(
            table.contains("| hyper c=64 / tcp | 0.600 | 0.612 | 2.0% | 3% | yes |"),
            "{table}"
        );
    }
}
