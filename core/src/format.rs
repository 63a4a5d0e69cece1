//! Human formatting of the figures every table and summary prints: durations with a unit chosen
//! for readability, and counts with thousands separators. One place, so the client's summary,
//! the harness's tables and the crosscheck all write `1.50ms` and `1,234,567` the same way.

/// Formats nanoseconds with a unit chosen for readability (3 significant digits).
pub fn duration(nanos: u64) -> String {
    let n = nanos as f64;
    let (value, unit) = if n < 1e3 {
        (n, "ns")
    } else if n < 1e6 {
        (n / 1e3, "µs")
    } else if n < 1e9 {
        (n / 1e6, "ms")
    } else {
        (n / 1e9, "s")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}{unit}")
}

/// Formats an integer with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations pick a unit and keep 3 significant digits; counts get separators.
    #[test]
    fn formatting() {
        let cases = [
            (0, "0.00ns"),
            (999, "999ns"),
            (1_000, "1.00µs"),
            (12_345, "12.3µs"),
            (512_000, "512µs"),
            (1_500_000, "1.50ms"),
            (2_000_000_000, "2.00s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(duration(nanos), text);
        }
        let counts = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in counts {
            assert_eq!(count(n), text);
        }
    }
}
