//! `--source ADDR[-ADDR]`: the local addresses connections are made from, in turn, so that
//! one destination can take more connections than one address pair has ephemeral ports
//! (about 28,000 on Linux's default range).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most addresses a range may hold.
pub const MAX_SOURCES: u32 = 65_536;

/// One local address, or an IPv4 range of them (inclusive). Serialized as it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceRange {
    first: IpAddr,
    last: IpAddr,
}

impl SourceRange {
    /// Every address of the range, in order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        match (self.first, self.last) {
            (IpAddr::V4(first), IpAddr::V4(last)) => (u32::from(first)..=u32::from(last))
                .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .collect(),
            (first, _) => vec![first],
        }
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for SourceRange {
    type Err = String;

    fn from_str(text: &str) -> Result<SourceRange, String> {
        let usage = |why: &str| {
            format!(
                "--source `{text}`: {why}; give an address or an IPv4 range, e.g. 127.0.0.2-127.0.0.9"
            )
        };
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let parse = |part: &str| {
            part.trim()
                .parse::<IpAddr>()
                .map_err(|_| usage(&format!("`{}` is not an IP address", part.trim())))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    return Err(usage("the range ends before it starts"));
                }
                if b - a >= MAX_SOURCES {
                    return Err(usage(&format!("more than {MAX_SOURCES} addresses")));
                }
            }
            (IpAddr::V6(a), IpAddr::V6(b)) if a == b => {}
            _ => return Err(usage("ranges are IPv4 only")),
        }
        Ok(SourceRange { first, last })
    }
}

impl TryFrom<String> for SourceRange {
    type Error = String;

    fn try_from(text: String) -> Result<SourceRange, String> {
        text.parse()
    }
}

impl From<SourceRange> for String {
    fn from(range: SourceRange) -> String {
        range.to_string()
    }
}

/// The ephemeral port range connections take their local ports from
/// (`/proc/sys/net/ipv4/ip_local_port_range`), if it can be read.
pub fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next()?, parts.next()?) {
        (Ok(low), Ok(high)) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// A warning when `connections` to one destination from `sources` local addresses would take
/// more than half of each address's `ports`: connect() searches the range for a free port on
/// every connection, and that search slows as the range fills (here 100,000 connections from
/// 5 addresses, 71% of each range, opened in 120 s where `--connect-rate 5000` asked for 20 s;
/// from 20 addresses, 18% each, in 20 s).
pub fn crowding(connections: u64, sources: usize, ports: (u16, u16)) -> Option<String> {
    let sources = sources.max(1) as u64;
    let range = u64::from(ports.1 - ports.0) + 1;
    let each = connections.div_ceil(sources);
    (each * 2 > range).then(|| {
        let needed = (connections * 2).div_ceil(range);
        format!(
            "{connections} connections from {sources} source address{} is {each} per address, {}% of its {range} ephemeral ports ({}-{}): connects slow down as the range fills; spread them over {needed} or more addresses with --source (e.g. 127.0.0.2-127.0.0.{})",
            if sources == 1 { "" } else { "es" },
            each * 100 / range,
            ports.0,
            ports.1,
            (needed + 1).min(255)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses and IPv4 ranges parse and expand; the rest is refused, saying why.
    #[test]
    fn ranges() {
        let ok: [(&str, usize, &str); 4] = [
            ("127.0.0.2", 1, "127.0.0.2"),
            ("127.0.0.2-127.0.0.9", 8, "127.0.0.2-127.0.0.9"),
            ("127.0.0.255-127.0.1.0", 2, "127.0.0.255-127.0.1.0"),
            ("::1", 1, "::1"),
        ];
        for (text, count, shown) in ok {
            let range: SourceRange = text.parse().unwrap();
            assert_eq!(range.addresses().len(), count, "{text}");
            assert_eq!(range.to_string(), shown);
        }
        let range: SourceRange = "127.0.0.2-127.0.0.4".parse().unwrap();
        assert_eq!(
            range.addresses(),
            ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        let bad: [(&str, &str); 5] = [
            ("localhost", "not an IP address"),
            ("127.0.0.9-127.0.0.2", "ends before it starts"),
            ("10.0.0.0-10.2.0.0", "more than 65536"),
            ("::1-::2", "IPv4 only"),
            ("127.0.0.1-::1", "IPv4 only"),
        ];
        for (text, expected) in bad {
            let err = text.parse::<SourceRange>().unwrap_err();
            assert!(
                err.contains(expected) && err.contains("--source"),
                "{text}: {err}"
            );
        }
    }

    /// More than half of each address's ports is crowded, and the advice covers the load.
    #[test]
    fn crowded_ranges() {
        let linux = (32768, 60999);
        let cases: [(u64, usize, Option<&str>); 5] = [
            (10_000, 1, None),
            (14_116, 1, None),
            (
                14_117,
                1,
                Some("14117 connections from 1 source address is 14117 per address, 50%"),
            ),
            (
                100_000,
                5,
                Some(
                    "spread them over 8 or more addresses with --source (e.g. 127.0.0.2-127.0.0.9)",
                ),
            ),
            (100_000, 20, None),
        ];
        for (connections, sources, expected) in cases {
            let got = crowding(connections, sources, linux);
            match expected {
                None => assert_eq!(got, None, "{connections}/{sources}"),
                Some(text) => {
                    let got = got.unwrap();
                    assert!(got.contains(text), "{got}");
                }
            }
        }
    }
}
