//! The cells of an experiment: every server crossed with every point of the `[[matrix]]`
//! blocks that apply to it. A cell is what gets repeated over trials and summarised.

use std::fmt;

use echobench_core::Protocol;
use serde::{Deserialize, Serialize};

use crate::config::HarnessConfig;

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
}

impl Cell {
    /// A stable id usable in file names: `hyper-c64-s32-r0` (`-rate1000` in open loop).
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}-c{}-s{}-r{}",
            self.server, self.connections, self.size, self.roundtrips
        );
        if let Some(rate) = self.rate {
            id.push_str(&format!("-rate{rate}"));
        }
        id
    }

    /// The load without the server: what cells of different servers share when compared.
    pub fn load(&self) -> Load {
        Load {
            protocol: self.protocol,
            connections: self.connections,
            size: self.size,
            roundtrips: self.roundtrips,
            rate: self.rate,
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
        if let Some(rate) = self.rate {
            write!(f, " rate={rate}/s")?;
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
}

impl Load {
    /// Total order for tables: protocol, size, roundtrips, rate, connections.
    pub fn sort_key(&self) -> (u8, usize, u64, u64, u32) {
        let protocol = match self.protocol {
            Protocol::Http => 0,
            Protocol::WebSocket => 1,
            Protocol::Tcp => 2,
        };
        (
            protocol,
            self.size,
            self.roundtrips,
            self.rate.map_or(0, |r| r.to_bits()),
            self.connections,
        )
    }
}

/// Expands the matrix: for each server in config order, each matrix block that applies to it,
/// in block order, each combination of its lists. Duplicates (the same load listed twice) are
/// dropped.
pub fn cells(config: &HarnessConfig) -> Vec<Cell> {
    let mut cells: Vec<Cell> = Vec::new();
    for (server_index, server) in config.servers.iter().enumerate() {
        for matrix in &config.matrices {
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
            let rates: Vec<Option<f64>> = if matrix.rate.is_empty() {
                vec![None]
            } else {
                matrix
                    .rate
                    .iter()
                    .map(|&r| (r > 0.0).then_some(r))
                    .collect()
            };
            for &connections in &matrix.connections {
                for &size in &matrix.size {
                    for &roundtrips in &matrix.roundtrips {
                        for &rate in &rates {
                            let cell = Cell {
                                server_index,
                                server: server.name.clone(),
                                protocol: server.protocol,
                                connections,
                                size,
                                roundtrips,
                                rate,
                            };
                            if !cells.contains(&cell) {
                                cells.push(cell);
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

    /// The default matrix has 5 loads for each of the 5 servers, in config order.
    #[test]
    fn default_matrix() {
        let config = HarnessConfig::default_config().unwrap();
        let cells = cells(&config);
        assert_eq!(cells.len(), 25);
        let ids: Vec<String> = cells.iter().take(5).map(Cell::id).collect();
        assert_eq!(
            ids,
            [
                "hyper-c1-s32-r0",
                "hyper-c64-s32-r0",
                "hyper-c256-s32-r0",
                "hyper-c64-s4096-r0",
                "hyper-c64-s32-r10"
            ]
        );
        assert_eq!(cells[24].id(), "tcp-c64-s32-r10");
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
}
