//! CPU lists as `taskset -c` writes them (`0`, `0-3`, `0,2,4-5`), and the default split of
//! the CPUs this process may use: the first half for the server, the rest for the client.

use std::fmt;

/// A sorted, duplicate-free list of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

/// A CPU list that cannot be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    /// Not a CPU list.
    #[error("`{0}` is not a CPU list; write it like taskset -c does: 0, 0-3 or 0,2,4-5")]
    Syntax(String),
    /// Names a CPU this process may not run on.
    #[error("CPU {cpu} in `{list}` is not one this process may run on (allowed: {allowed})")]
    NotAllowed {
        /// The offending CPU.
        cpu: usize,
        /// The list given.
        list: String,
        /// The allowed CPUs.
        allowed: CpuSet,
    },
}

impl CpuSet {
    /// A set of the given CPUs.
    pub fn new(mut cpus: Vec<usize>) -> CpuSet {
        cpus.sort_unstable();
        cpus.dedup();
        CpuSet(cpus)
    }

    /// Parses `0,2,4-5`.
    pub fn parse(list: &str) -> Result<CpuSet, CpuSetError> {
        let syntax = || CpuSetError::Syntax(list.to_owned());
        let mut cpus = Vec::new();
        for part in list.split(',').map(str::trim) {
            match part.split_once('-') {
                Some((from, to)) => {
                    let from: usize = from.trim().parse().map_err(|_| syntax())?;
                    let to: usize = to.trim().parse().map_err(|_| syntax())?;
                    if from > to {
                        return Err(syntax());
                    }
                    cpus.extend(from..=to);
                }
                None => cpus.push(part.parse().map_err(|_| syntax())?),
            }
        }
        if cpus.is_empty() {
            return Err(syntax());
        }
        Ok(CpuSet::new(cpus))
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fails unless every CPU is in `allowed`.
    pub fn check_within(&self, allowed: &CpuSet) -> Result<(), CpuSetError> {
        match self.0.iter().find(|cpu| !allowed.0.contains(cpu)) {
            Some(&cpu) => Err(CpuSetError::NotAllowed {
                cpu,
                list: self.to_string(),
                allowed: allowed.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Splits `allowed` into (server, client): the first half (rounded down, at least one) for
    /// the server, the rest for the client; with a single CPU both share it.
    pub fn split(allowed: &CpuSet) -> (CpuSet, CpuSet) {
        let cpus = &allowed.0;
        if cpus.len() < 2 {
            return (allowed.clone(), allowed.clone());
        }
        let half = cpus.len() / 2;
        (CpuSet(cpus[..half].to_vec()), CpuSet(cpus[half..].to_vec()))
    }
}

impl fmt::Display for CpuSet {
    /// Writes the list compactly (`0-3,6`), the form `taskset -c` accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists parse to sorted sets and print back compactly.
    #[test]
    fn parse_and_print() {
        let cases = [
            ("0", vec![0], "0"),
            ("1", vec![1], "1"),
            ("0-3", vec![0, 1, 2, 3], "0-3"),
            ("4,0,2-3", vec![0, 2, 3, 4], "0,2-4"),
            (" 1 , 1 ", vec![1], "1"),
        ];
        for (text, cpus, printed) in cases {
            let set = CpuSet::parse(text).unwrap();
            assert_eq!(set.cpus(), cpus.as_slice(), "{text}");
            assert_eq!(set.to_string(), printed, "{text}");
        }
        for bad in ["", "a", "3-1", "1,,2", "-1"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The default split gives the server the first half and the client the rest.
    #[test]
    fn split_allowed_cpus() {
        let cases = [
            (vec![0], "0", "0"),
            (vec![0, 1], "0", "1"),
            (vec![0, 1, 2], "0", "1-2"),
            (vec![2, 3, 4, 5], "2-3", "4-5"),
        ];
        for (allowed, server, client) in cases {
            let (s, c) = CpuSet::split(&CpuSet::new(allowed));
            assert_eq!(
                (s.to_string().as_str(), c.to_string().as_str()),
                (server, client)
            );
        }
        let allowed = CpuSet::new(vec![0, 1]);
        assert!(CpuSet::parse("1").unwrap().check_within(&allowed).is_ok());
        let err = CpuSet::parse("0-2")
            .unwrap()
            .check_within(&allowed)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CPU 2 in `0-2` is not one this process may run on (allowed: 0-1)"
        );
    }
}
