//! Statistics over trials, in one pure module with hand-checkable tests.
//!
//! Estimators: the median of an even count is the mean of the two middle values; the standard
//! deviation is the sample one (n - 1); the coefficient of variation is that standard deviation
//! over the mean; the 95% confidence interval of the mean is mean ± t(0.975, n-1) · s/√n
//! (Student's t, as trials are few); two runs are compared with Welch's unequal-variances
//! t-test (two-sided). Latency percentiles are never averaged: cells merge their trials' HDR
//! histograms and read percentiles off the merge.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The summary of one metric over trials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Number of values.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sample standard deviation (0 with one value).
    pub stdev: f64,
    /// Coefficient of variation in percent (`None` with fewer than two values or a zero mean).
    pub cv_percent: Option<f64>,
    /// 95% confidence interval of the mean (`None` with fewer than two values).
    pub ci95: Option<(f64, f64)>,
}

/// Summarises `values`; `None` when empty.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mean = values.iter().sum::<f64>() / n as f64;
    let stdev = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let cv_percent = (n > 1 && mean != 0.0).then(|| 100.0 * stdev / mean.abs());
    let ci95 = (n > 1).then(|| {
        let half = t_quantile_975(n - 1) * stdev / (n as f64).sqrt();
        (mean - half, mean + half)
    });
    Some(Spread {
        n,
        median,
        mean,
        min: sorted[0],
        max: sorted[n - 1],
        stdev,
        cv_percent,
        ci95,
    })
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (1.96 as df → ∞).
pub fn t_quantile_975(df: usize) -> f64 {
    match StudentsT::new(0.0, 1.0, df as f64) {
        Ok(t) => t.inverse_cdf(0.975),
        Err(_) => f64::NAN,
    }
}

/// The outcome of Welch's t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// The t statistic (positive when `b`'s mean is larger).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's t-test of `b` against `a`; `None` with fewer than two values on either side or
/// when both have no variance (identical values carry no evidence either way).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (sa, sb) = (spread(a)?, spread(b)?);
    if sa.n < 2 || sb.n < 2 {
        return None;
    }
    let (va, vb) = (
        sa.stdev.powi(2) / sa.n as f64,
        sb.stdev.powi(2) / sb.n as f64,
    );
    let se2 = va + vb;
    if se2 == 0.0 {
        return None;
    }
    let t = (sb.mean - sa.mean) / se2.sqrt();
    let df = se2.powi(2) / (va.powi(2) / (sa.n - 1) as f64 + vb.powi(2) / (sb.n - 1) as f64);
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => 2.0 * (1.0 - dist.cdf(t.abs())),
        Err(_) => f64::NAN,
    };
    Some(Welch { t, df, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample sd √(32/7), median 4.5, CI from t(7) = 2.3646.
    #[test]
    fn spread_of_a_textbook_sample() {
        let s = spread(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.mean, s.min, s.max),
            (8, 4.5, 5.0, 2.0, 9.0)
        );
        let sd = (32.0f64 / 7.0).sqrt();
        assert!(close(s.stdev, sd, 1e-12));
        assert!(close(s.cv_percent.unwrap(), 100.0 * sd / 5.0, 1e-9));
        let half = 2.364_624 * sd / 8f64.sqrt();
        let (lo, hi) = s.ci95.unwrap();
        assert!(
            close(lo, 5.0 - half, 1e-4) && close(hi, 5.0 + half, 1e-4),
            "{lo} {hi}"
        );
    }

    /// Odd counts take the middle value; one value has no spread, CV or interval.
    #[test]
    fn small_samples() {
        let s = spread(&[30.0, 10.0, 20.0]).unwrap();
        assert_eq!((s.median, s.mean, s.stdev), (20.0, 20.0, 10.0));
        assert!(close(s.cv_percent.unwrap(), 50.0, 1e-12));
        // t(0.975, 2) = 4.302653
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(hi - 20.0, 4.302_653 * 10.0 / 3f64.sqrt(), 1e-4));
        assert!(close(20.0 - lo, hi - 20.0, 1e-9));
        let one = spread(&[7.0]).unwrap();
        assert_eq!(
            (one.median, one.stdev, one.cv_percent, one.ci95),
            (7.0, 0.0, None, None)
        );
        assert!(spread(&[]).is_none());
    }

    /// t quantiles match the tables.
    #[test]
    fn t_quantiles() {
        for (df, q) in [
            (1, 12.706_205),
            (2, 4.302_653),
            (4, 2.776_445),
            (30, 2.042_272),
            (1000, 1.962_339),
        ] {
            assert!(
                close(t_quantile_975(df), q, 1e-5),
                "df {df}: {}",
                t_quantile_975(df)
            );
        }
    }

    /// Welch's test on a hand-computed example.
    #[test]
    fn welch_example() {
        // a: mean 10, var 1 ; b: mean 12, var 4 ; n = 3 each.
        let a = [9.0, 10.0, 11.0];
        let b = [10.0, 12.0, 14.0];
        let w = welch(&a, &b).unwrap();
        // se² = 1/3 + 4/3 = 5/3 ; t = 2 / √(5/3) = 1.549193
        assert!(close(w.t, 1.549_193, 1e-6), "{}", w.t);
        // df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 2.941176
        assert!(close(w.df, 2.941_176, 1e-6), "{}", w.df);
        assert!(w.p > 0.2 && w.p < 0.25, "{}", w.p);
        let clear = welch(&[100.0, 101.0, 99.0], &[200.0, 201.0, 199.0]).unwrap();
        assert!(clear.p < 1e-4, "{}", clear.p);
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
        assert!(welch(&[1.0, 1.0], &[1.0, 1.0]).is_none());
    }
}
