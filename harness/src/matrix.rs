//! The cells of an experiment: every server crossed with every point of the `[[matrix]]`
//! blocks that apply to it. A cell is what gets repeated over trials and summarised.

use std::fmt;
use std::time::Duration;

use echobench_core::Protocol;
use serde::{Deserialize, Serialize};

use crate::config::{HarnessConfig, RunSection};
use crate::workload::Workload;

/// One load on one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Index of the server in the config.
    pub server_index: usize,
    /// Server name.
    pub server: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// Concurrent connections.
    pub connections: u32,
    /// Message size.
    pub size: usize,
    /// Round trips per connection (0 = kept).
    pub roundtrips: u64,
    /// Open-loop rate, or `None` for closed loop.
    pub rate: Option<f64>,
    /// The rate as a fraction of the server's capacity for this load, measured in the same
    /// run; `rate` is filled in from it once the capacity is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_capacity: Option<f64>,
    /// TLS: replacement connections resume their sessions (`--tls-resume`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_resume: bool,
    /// A broadcast cell: this many of the `connections` (its subscribers) publish, at `rate`
    /// messages per second in total; `None` for echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishers: Option<u32>,
    /// Its block's own trials, window and warmup, where they replace `[run]`'s. Not part of the
    /// load: two cells that differ only here are the same cell (the first block listing it
    /// wins).
    #[serde(default, skip_serializing_if = "Timing::is_unset")]
    pub timing: Timing,
}

/// A `[[matrix]]` block's own `trials`, `duration` and `warmup`; unset ones are `[run]`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Trials per cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
    /// Measured window of each trial.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Warmup before it.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub warmup: Option<Duration>,
}

impl Timing {
    /// Nothing of `[run]`'s is replaced.
    pub fn is_unset(&self) -> bool {
        *self == Timing::default()
    }

    /// `[run]` with this timing's trials, window and warmup in place of the section's.
    pub fn apply(&self, run: &RunSection) -> RunSection {
        RunSection {
            trials: self.trials.unwrap_or(run.trials),
            duration: self.duration.unwrap_or(run.duration),
            warmup: self.warmup.unwrap_or(run.warmup),
            ..run.clone()
        }
    }
}

/// Trials `cells` run in all, each its block's number or `[run]`'s.
pub fn total_trials(cells: &[Cell], run: &RunSection) -> usize {
    cells.iter().map(|c| c.trials(run) as usize).sum()
}

impl Cell {
    /// How many trials this cell runs.
    pub fn trials(&self, run: &RunSection) -> u32 {
        self.timing.trials.unwrap_or(run.trials)
    }

    /// `[run]` as this cell's trials see it: its block's window and warmup in place of the
    /// section's.
    pub fn run_section(&self, run: &RunSection) -> RunSection {
        self.timing.apply(run)
    }

    /// A stable id usable in file names: `hyper-c64-s32-r0` (`-rate1000` in open loop).
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}-c{}-s{}-r{}",
            self.server, self.connections, self.size, self.roundtrips
        );
        match (self.of_capacity, self.rate) {
            (Some(fraction), _) => id.push_str(&format!("-cap{fraction}")),
            (None, Some(rate)) => id.push_str(&format!("-rate{rate}")),
            (None, None) => {}
        }
        if self.tls_resume {
            id.push_str("-resume");
        }
        if let Some(publishers) = self.publishers {
            id.push_str(&format!("-pub{publishers}"));
        }
        id
    }

    /// What the cell loads.
    pub fn workload(&self) -> Workload {
        match self.publishers {
            Some(_) => Workload::Broadcast,
            None => Workload::Echo,
        }
    }

    /// The same load without a rate: the capacity search this cell's rate comes from.
    pub fn shape(&self) -> Cell {
        Cell {
            rate: None,
            of_capacity: None,
            timing: Timing::default(),
            ..self.clone()
        }
    }

    /// The load without the server: what cells of different servers share when compared.
    pub fn load(&self) -> Load {
        Load {
            protocol: self.protocol,
            connections: self.connections,
            size: self.size,
            roundtrips: self.roundtrips,
            // Cells at a fraction of each server's own capacity compare as one load.
            rate: if self.of_capacity.is_some() {
                None
            } else {
                self.rate
            },
            of_capacity: self.of_capacity,
            tls_resume: self.tls_resume,
            publishers: self.publishers,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} c={} size={} r={}",
            self.server, self.connections, self.size, self.roundtrips
        )?;
        if let Some(fraction) = self.of_capacity {
            write!(f, " rate={:.0}% of capacity", fraction * 100.0)?;
        }
        if let Some(rate) = self.rate {
            write!(f, " rate={rate:.0}/s")?;
        }
        if self.tls_resume {
            f.write_str(" tls-resume")?;
        }
        if let Some(publishers) = self.publishers {
            write!(f, " broadcast publishers={publishers}")?;
        }
        Ok(())
    }
}

/// A load shared by the cells of several servers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Protocol.
    pub protocol: Protocol,
    /// Connections.
    pub connections: u32,
    /// Message size.
    pub size: usize,
    /// Round trips per connection.
    pub roundtrips: u64,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Open-loop rate as a fraction of each server's capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_capacity: Option<f64>,
    /// TLS sessions resumed on replacement connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_resume: bool,
    /// Broadcast: the publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishers: Option<u32>,
}

impl Load {
    /// Total order for tables: workload, protocol, size, roundtrips, rate, resumption,
    /// connections.
    pub fn sort_key(&self) -> (Option<u32>, u8, usize, u64, u64, u64, bool, u32) {
        let protocol = match self.protocol {
            Protocol::Http => 0,
            Protocol::WebSocket => 1,
            Protocol::Tcp => 2,
        };
        (
            self.publishers,
            protocol,
            self.size,
            self.roundtrips,
            self.rate.map_or(0, |r| r.to_bits()),
            self.of_capacity.map_or(0, |r| r.to_bits()),
            self.tls_resume,
            self.connections,
        )
    }
}

/// Expands the matrix: for each server in config order, each matrix block that applies to it,
/// in block order, each combination of its lists. Duplicates (the same load listed twice) are
/// dropped. `capacity = true` blocks are searched, not run: see [`targets`].
pub fn cells(config: &HarnessConfig) -> Vec<Cell> {
    expand(config, false)
}

/// The loads of the `capacity = true` blocks, as cells without a rate: one capacity search
/// each. In connections mode the search varies the connections, so the blocks' connection
/// lists do not apply and every target has `connections` 0.
pub fn targets(config: &HarnessConfig) -> Vec<Cell> {
    let mut targets = expand(config, true);
    if config.search.mode == crate::capacity::settings::Mode::Connections {
        for t in &mut targets {
            t.connections = 0;
        }
        let mut unique: Vec<Cell> = Vec::new();
        for t in targets {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        targets = unique;
    }
    targets
}

fn expand(config: &HarnessConfig, capacity: bool) -> Vec<Cell> {
    let mut cells: Vec<Cell> = Vec::new();
    for (server_index, server) in config.servers.iter().enumerate() {
        for matrix in config.matrices.iter().filter(|m| m.capacity == capacity) {
            if matrix
                .servers
                .as_ref()
                .is_some_and(|names| !names.contains(&server.name))
            {
                continue;
            }
            if matrix
                .protocols
                .as_ref()
                .is_some_and(|ps| !ps.contains(&server.protocol))
            {
                continue;
            }
            if matrix.tls_resume && !server.tls {
                continue;
            }
            if !server.serves(matrix.workload) {
                continue;
            }
            let publishers: Vec<Option<u32>> = match matrix.workload {
                Workload::Echo => vec![None],
                Workload::Broadcast => matrix.publishers.iter().copied().map(Some).collect(),
            };
            let rates: Vec<(Option<f64>, Option<f64>)> = if !matrix.rate_of_capacity.is_empty() {
                matrix
                    .rate_of_capacity
                    .iter()
                    .map(|&f| (None, Some(f)))
                    .collect()
            } else if matrix.rate.is_empty() {
                vec![(None, None)]
            } else {
                matrix
                    .rate
                    .iter()
                    .map(|&r| ((r > 0.0).then_some(r), None))
                    .collect()
            };
            for &connections in &matrix.connections {
                for &size in &matrix.size {
                    for &roundtrips in &matrix.roundtrips {
                        for &(rate, of_capacity) in &rates {
                            for &publishers in &publishers {
                                let cell = Cell {
                                    server_index,
                                    server: server.name.clone(),
                                    protocol: server.protocol,
                                    connections,
                                    size,
                                    roundtrips,
                                    rate,
                                    of_capacity,
                                    tls_resume: matrix.tls_resume,
                                    publishers,
                                    timing: matrix.timing(),
                                };
                                if !cells.iter().any(|c| c.id() == cell.id()) {
                                    cells.push(cell);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default matrix: one capacity search per echo server, then three loads for each of
    /// the 5 (a fixed rate, closed loop, churn), in config order, with a broadcast cell for
    /// each of the 3 relays.
    #[test]
    fn default_matrix() {
        let config = HarnessConfig::default_config().unwrap();
        let targets: Vec<String> = targets(&config).iter().map(Cell::id).collect();
        assert_eq!(
            targets,
            [
                "hyper-c64-s32-r0",
                "axum-c64-s32-r0",
                "tungstenite-c64-s32-r0",
                "axum-ws-c64-s32-r0",
                "tcp-c64-s32-r0"
            ]
        );
        let cells = cells(&config);
        assert_eq!(cells.len(), 18);
        let ids: Vec<String> = cells.iter().take(3).map(Cell::id).collect();
        assert_eq!(
            ids,
            [
                "hyper-c64-s32-r0-rate10000",
                "hyper-c64-s32-r0",
                "hyper-c64-s32-r10"
            ]
        );
        assert_eq!(cells[17].id(), "tcp-relay-c100-s64-r0-rate100-pub1");
        let relays: Vec<String> = cells
            .iter()
            .filter(|c| c.publishers.is_some())
            .map(|c| c.server.clone())
            .collect();
        assert_eq!(relays, ["tungstenite", "axum-ws", "tcp-relay"]);
    }

    /// A share of capacity is its own kind of cell: it names the capacity search it needs, and
    /// servers at the same share compare as one load whatever their rates.
    #[test]
    fn shares_of_capacity() {
        let text = r#"
            [[server]]
            name = "h"
            command = ["x"]
            protocol = "tcp"
            [[matrix]]
            connections = [2]
            capacity = true
            [[matrix]]
            connections = [2]
            rate_of_capacity = [0.5, 1]
        "#;
        let config = HarnessConfig::parse(text, "t").unwrap();
        let cells = cells(&config);
        let ids: Vec<String> = cells.iter().map(Cell::id).collect();
        assert_eq!(ids, ["h-c2-s32-r0-cap0.5", "h-c2-s32-r0-cap1"]);
        assert_eq!(targets(&config), [cells[0].shape()]);
        let mut resolved = cells[0].clone();
        resolved.rate = Some(1234.0);
        assert_eq!(resolved.load(), cells[0].load());
        assert_eq!(resolved.load().rate, None);
        assert_eq!(resolved.id(), "h-c2-s32-r0-cap0.5");
    }

    /// Filters by server and protocol; rate 0 means closed loop; duplicates are dropped.
    #[test]
    fn filters_rates_and_duplicates() {
        let text = r#"
            [[server]]
            name = "h"
            command = ["x"]
            protocol = "http"
            [[server]]
            name = "w"
            command = ["x"]
            protocol = "websocket"
            [[matrix]]
            connections = [2]
            rate = [0, 500]
            protocols = ["websocket"]
            [[matrix]]
            connections = [2, 2]
            servers = ["h"]
        "#;
        let config = HarnessConfig::parse(text, "t").unwrap();
        let ids: Vec<String> = cells(&config).iter().map(Cell::id).collect();
        assert_eq!(ids, ["h-c2-s32-r0", "w-c2-s32-r0", "w-c2-s32-r0-rate500"]);
    }

    /// A block's own trials, window and warmup reach its cells (and `[run]`'s the rest); a
    /// load listed again in a later block with other timing is still one cell, the first's;
    /// the capacity search a share of capacity needs is found whatever its block's timing.
    #[test]
    fn block_timing() {
        let text = r#"
            [run]
            trials = 3
            duration = "2s"
            warmup = "500ms"
            [[server]]
            name = "h"
            command = ["x"]
            protocol = "tcp"
            [[matrix]]
            connections = [2]
            capacity = true
            [[matrix]]
            connections = [2]
            rate = [500]
            trials = 8
            duration = "1s"
            [[matrix]]
            connections = [2]
            rate = [500, 600]
            rate_of_capacity = []
            trials = 2
            [[matrix]]
            connections = [2]
            rate_of_capacity = [0.5]
            warmup = "100ms"
        "#;
        let config = HarnessConfig::parse(text, "t").unwrap();
        let cells = cells(&config);
        let got: Vec<(String, u32, Duration, Duration)> = cells
            .iter()
            .map(|c| {
                let run = c.run_section(&config.run);
                (c.id(), c.trials(&config.run), run.duration, run.warmup)
            })
            .collect();
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        assert_eq!(
            got,
            [
                ("h-c2-s32-r0-rate500".to_owned(), 8, s(1), ms(500)),
                ("h-c2-s32-r0-rate600".to_owned(), 2, s(2), ms(500)),
                ("h-c2-s32-r0-cap0.5".to_owned(), 3, s(2), ms(100)),
            ]
        );
        assert_eq!(targets(&config), [cells[2].shape()]);
        assert!(targets(&config)[0].timing.is_unset());
    }
}
