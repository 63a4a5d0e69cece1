//! `comparison.csv`: one row per load (protocol, connections, size, roundtrips, rate or share
//! of capacity) and, for
//! every server, its median throughput and ratio to the best server of that load, then its p99
//! and ratio to the best (lowest) p99. Servers that did not run a load have empty cells.

use super::{micros, num};
use crate::aggregate::CellSummary;
use crate::matrix::Load;

/// The columns for these servers.
pub fn header(servers: &[String]) -> Vec<String> {
    let mut columns: Vec<String> = [
        "protocol",
        "connections",
        "size",
        "roundtrips",
        "rate",
        "rate_of_capacity",
        "tls_resume",
        "publishers",
    ]
    .map(String::from)
    .to_vec();
    for server in servers {
        columns.push(format!("{server}_rps"));
        columns.push(format!("{server}_rps_ratio"));
    }
    for server in servers {
        columns.push(format!("{server}_p99_us"));
        columns.push(format!("{server}_p99_ratio"));
    }
    columns
}

/// The loads in table order, each with the summaries of the servers that ran it.
pub fn loads(summaries: &[CellSummary]) -> Vec<(Load, Vec<&CellSummary>)> {
    let mut loads: Vec<(Load, Vec<&CellSummary>)> = Vec::new();
    for summary in summaries {
        let load = summary.cell.load();
        match loads.iter_mut().find(|(l, _)| *l == load) {
            Some((_, cells)) => cells.push(summary),
            None => loads.push((load, vec![summary])),
        }
    }
    loads.sort_by_key(|(load, _)| load.sort_key());
    loads
}

/// One row per load, aligned with [`header`].
pub fn rows(summaries: &[CellSummary], servers: &[String]) -> Vec<Vec<String>> {
    loads(summaries)
        .into_iter()
        .map(|(load, cells)| {
            let rps = |s: &CellSummary| s.throughput.map(|t| t.median);
            let p99 = |s: &CellSummary| s.latency.filter(|p| p.count > 0).map(|p| p.p99);
            let best_rps = cells.iter().filter_map(|s| rps(s)).reduce(f64::max);
            let best_p99 = cells.iter().filter_map(|s| p99(s)).min();
            let find = |name: &String| cells.iter().find(|s| &s.cell.server == name).copied();
            let mut row = vec![
                load.protocol.to_string(),
                load.connections.to_string(),
                load.size.to_string(),
                load.roundtrips.to_string(),
                load.rate.map(|r| r.to_string()).unwrap_or_default(),
                load.of_capacity.map(|r| r.to_string()).unwrap_or_default(),
                load.tls_resume.to_string(),
                load.publishers.map(|p| p.to_string()).unwrap_or_default(),
            ];
            for server in servers {
                let value = find(server).and_then(rps);
                row.push(num(value, 1));
                row.push(num(value.zip(best_rps).map(|(v, b)| v / b), 3));
            }
            for server in servers {
                let value = find(server).and_then(p99);
                row.push(value.map(micros).unwrap_or_default());
                row.push(num(
                    value.zip(best_p99).map(|(v, b)| v as f64 / b.max(1) as f64),
                    3,
                ));
            }
            row
        })
        .collect()
}
