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
}
