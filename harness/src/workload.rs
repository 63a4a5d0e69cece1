//! What a cell asks of its server: echo (every round trip answered to its sender) or
//! broadcast (every message relayed to every subscriber, `echo-client --workload broadcast`).
//! A `[[server]]` says which it serves (`workloads`), a `[[matrix]]` block which it loads
//! (`workload`); a block applies only to the servers that serve its workload.

use echobench_core::Protocol;
use serde::{Deserialize, Serialize};

use crate::config::{HarnessConfig, MatrixSpec, ServerSpec};

/// A kind of load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Round trips to an echo server.
    #[default]
    Echo,
    /// Messages through a broadcast relay, timed at every subscriber.
    Broadcast,
}

/// The default of `[[server]] workloads`: echo only.
pub fn default_workloads() -> Vec<Workload> {
    vec![Workload::Echo]
}

/// The default of `[[matrix]] publishers`.
pub fn default_publishers() -> Vec<u32> {
    vec![1]
}

/// A WebSocket relay's path when `broadcast_path` is not given (the reference servers' and
/// the peers').
pub const DEFAULT_BROADCAST_PATH: &str = "/broadcast";

impl ServerSpec {
    /// Whether this server serves `workload`.
    pub fn serves(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }

    /// The path broadcast cells load: `broadcast_path`, `/broadcast` for WebSocket, and none
    /// for TCP (a TCP relay is the whole server).
    pub fn relay_path(&self) -> Option<&str> {
        match self.protocol {
            Protocol::WebSocket => Some(
                self.broadcast_path
                    .as_deref()
                    .unwrap_or(DEFAULT_BROADCAST_PATH),
            ),
            Protocol::Tcp | Protocol::Http => None,
        }
    }
}

/// The broadcast settings of a config that do not fit, by field: a server that relays must
/// speak WebSocket or TCP and serve something; a broadcast block needs kept connections,
/// messages big enough for the stamp, publishers among the subscribers, and no TLS
/// resumption (its subscribers never reconnect).
pub fn validate(config: &HarnessConfig) -> Result<(), String> {
    for server in &config.servers {
        if server.workloads.is_empty() {
            return Err(format!(
                "[[server]] `{}` has an empty workloads list; give \"echo\", \"broadcast\" or both",
                server.name
            ));
        }
        if server.serves(Workload::Broadcast) && server.protocol == Protocol::Http {
            return Err(format!(
                "[[server]] `{}`: HTTP has no broadcast; workloads = [\"broadcast\"] is for websocket and tcp relays",
                server.name
            ));
        }
        if server.broadcast_path.is_some() && server.protocol != Protocol::WebSocket {
            return Err(format!(
                "[[server]] `{}`: broadcast_path is for WebSocket relays (a TCP relay is the whole server)",
                server.name
            ));
        }
    }
    for (i, matrix) in config.matrices.iter().enumerate() {
        check_block(&format!("[[matrix]] #{}", i + 1), matrix, config)?;
    }
    Ok(())
}

fn check_block(block: &str, matrix: &MatrixSpec, config: &HarnessConfig) -> Result<(), String> {
    if matrix.workload == Workload::Echo {
        if matrix.publishers != default_publishers() {
            return Err(format!(
                "{block}: publishers is for workload = \"broadcast\""
            ));
        }
        return Ok(());
    }
    if matrix.roundtrips.iter().any(|r| *r != 0) {
        return Err(format!(
            "{block}: a broadcast block keeps its subscribers connected; roundtrips must be [0]"
        ));
    }
    if matrix.tls_resume {
        return Err(format!(
            "{block}: tls_resume does not apply to broadcast (subscribers never reconnect)"
        ));
    }
    let min = echobench_core::broadcast::MIN_SIZE;
    if let Some(size) = matrix.size.iter().find(|s| **s < min) {
        return Err(format!(
            "{block}: size {size} is too small for a broadcast (each message carries a {min}-byte stamp); set size = [64] or more"
        ));
    }
    if matrix.publishers.is_empty() || matrix.publishers.contains(&0) {
        return Err(format!("{block}: publishers must list counts of 1 or more"));
    }
    let fewest = matrix.connections.iter().min().copied().unwrap_or(0);
    if let Some(p) = matrix.publishers.iter().find(|p| **p > fewest)
        && config.search.mode == crate::capacity::settings::Mode::Rate
    {
        return Err(format!(
            "{block}: publishers {p} exceeds connections {fewest}; publishers are some of the subscribers"
        ));
    }
    if !config.servers.iter().any(|s| s.serves(Workload::Broadcast)) {
        return Err(format!(
            "{block}: workload = \"broadcast\" but no [[server]] lists \"broadcast\" in its workloads"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVERS: &str = r#"
        [[server]]
        name = "w"
        command = ["x"]
        protocol = "websocket"
        workloads = ["echo", "broadcast"]
        [[server]]
        name = "t"
        command = ["x"]
        protocol = "tcp"
        workloads = ["broadcast"]
    "#;

    /// Each misfit names its block or server and the field to change.
    #[test]
    fn refuses_what_does_not_fit() {
        let cases = [
            (
                "[[matrix]]\nconnections = [4]\nsize = [64]\nworkload = \"broadcast\"\nroundtrips = [10]\n",
                "roundtrips must be [0]",
            ),
            (
                "[[matrix]]\nconnections = [4]\nworkload = \"broadcast\"\n",
                "size 32 is too small for a broadcast",
            ),
            (
                "[[matrix]]\nconnections = [4]\nsize = [64]\nworkload = \"broadcast\"\npublishers = [5]\n",
                "publishers 5 exceeds connections 4",
            ),
            (
                "[[matrix]]\nconnections = [4]\nsize = [64]\nworkload = \"broadcast\"\npublishers = [0]\n",
                "publishers must list counts of 1 or more",
            ),
            (
                "[[matrix]]\nconnections = [4]\npublishers = [2]\n",
                "publishers is for workload = \"broadcast\"",
            ),
            (
                "[[matrix]]\nconnections = [4]\nsize = [64]\nworkload = \"broadcast\"\ntls_resume = true\n",
                "tls_resume does not apply",
            ),
        ];
        for (block, needle) in cases {
            let text = format!("{SERVERS}{block}");
            let err = HarnessConfig::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains("[[matrix]] #1"), "{block}: {err}");
            assert!(err.contains(needle), "{block}: {err}");
        }
        let servers = [
            (
                "protocol = \"http\"\nworkloads = [\"broadcast\"]",
                "HTTP has no broadcast",
            ),
            (
                "protocol = \"tcp\"\nbroadcast_path = \"/b\"",
                "broadcast_path is for WebSocket relays",
            ),
            ("protocol = \"tcp\"\nworkloads = []", "empty workloads list"),
            (
                "protocol = \"tcp\"\nworkloads = [\"fanout\"]",
                "unknown variant `fanout`",
            ),
        ];
        for (fields, needle) in servers {
            let text = format!(
                "[[server]]\nname = \"s\"\ncommand = [\"x\"]\n{fields}\n[[matrix]]\nconnections = [1]\n"
            );
            let err = HarnessConfig::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains(needle), "{fields}: {err}");
        }
        let text = "[[server]]\nname = \"s\"\ncommand = [\"x\"]\nprotocol = \"tcp\"\n[[matrix]]\nconnections = [4]\nsize = [64]\nworkload = \"broadcast\"\n";
        let err = HarnessConfig::parse(text, "t").unwrap_err().to_string();
        assert!(err.contains("no [[server]] lists \"broadcast\""), "{err}");
    }

    /// Where broadcast cells connect: the configured path, `/broadcast`, or the TCP relay.
    #[test]
    fn relay_paths() {
        let text = format!(
            "{SERVERS}[[server]]\nname = \"v\"\ncommand = [\"x\"]\nprotocol = \"websocket\"\nworkloads = [\"broadcast\"]\nbroadcast_path = \"/fan\"\n[[matrix]]\nconnections = [1]\n"
        );
        let config = HarnessConfig::parse(&text, "t").unwrap();
        let paths: Vec<Option<&str>> = config.servers.iter().map(ServerSpec::relay_path).collect();
        assert_eq!(paths, [Some("/broadcast"), None, Some("/fan")]);
        assert!(config.servers[0].serves(Workload::Echo));
        assert!(!config.servers[1].serves(Workload::Echo));
    }
}
