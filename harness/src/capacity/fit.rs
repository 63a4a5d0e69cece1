//! The capacity from every probe of a target at once: the load at which a probe meets the SLO
//! half the time, from a logistic fit of pass or fail against the logarithm of the load.
//!
//! Near the knee a probe's verdict is a coin whose bias falls with the load: on this machine a
//! 1 s probe of `hyper` passed at 125,588/s and failed at 80,000/s in one run, and 30 of 70
//! failed probes failed only on late sends just over 1%. A bisection follows whichever coin
//! came up last, so each search lands somewhere in a band about ±20% wide and three of them
//! average to within ~15% from run to run. The fit weighs all of a target's probes (20-40,
//! most of them near the knee, where the searches and confirmations put them). Applied offline
//! to five pairs of runs of 2026-12-04 (a plain logistic fit, without the hiccup share), it
//! moved the median change of a capacity ratio to `tcp` between the two runs of a pair from
//! 12-17% to 2-8% in four pairs, and from 2.0% to 2.2% in the fifth.
//!
//! The model: P(pass at load v) = (1 − h) / (1 + exp(k · (ln v − ln c))), with c the capacity,
//! k > 0 how sharp the knee is, and h the share of probes that fail whatever the load (a
//! hiccup of the host; psychometric fits call it the lapse rate). Without h, a few failures far
//! below the knee flatten the fitted slope and drag c down with it: in the seeded test with
//! 10% hiccups the median error was 15% without it. Maximum likelihood on a grid: c in steps of
//! 0.2% of the load, k from 2 to 2,048 in steps of √2, h in {0, 2, 5, 10, 15, 20}%. When the
//! probes separate perfectly (every pass below every failure) the steepest slope wins and c
//! sits between the highest pass and the lowest failure, where a bisection would put it. The
//! interval is the profile likelihood's: every c whose best log-likelihood (over k and h) is
//! within 1.92 (χ²₁(0.95) / 2) of the maximum. A grid has no convergence to fail, and a few
//! dozen probes make it a few tens of milliseconds once per target.

/// A fitted capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The load at which a probe passes half the time.
    pub capacity: f64,
    /// Its 95% profile-likelihood interval.
    pub ci95: (f64, f64),
    /// The slope k at the maximum: how sharp the knee is (pass probability from 88% to 12%
    /// over ±2/k in ln load, ±12.5% of the load at k = 16).
    pub slope: f64,
    /// The share of probes failing whatever the load, at the maximum.
    pub hiccups: f64,
}

/// The fine grid's step in ln load: 0.2% of the load.
const STEP: f64 = 0.002;
/// The coarse grid's step: 2%.
const COARSE: f64 = 0.02;
/// How far the grid reaches beyond the probes, in ln load (from 0.61x to 1.65x): an
/// interval that reaches it is as wide as the probes allow.
const MARGIN: f64 = 0.5;
/// The shares of hiccups tried.
const HICCUPS: [f64; 6] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2];
/// Half the 0.95 quantile of χ² with one degree of freedom.
const HALF_CHI2_95: f64 = 1.920_729;

/// Fits the capacity to `probes` (load, passed). `None` unless at least one probe passed and
/// one failed: with only passes (or only failures) there is no knee to place.
pub fn fit(probes: &[(f64, bool)]) -> Option<Fit> {
    let points: Vec<(f64, bool)> = probes
        .iter()
        .filter(|(load, _)| load.is_finite() && *load > 0.0)
        .map(|&(load, pass)| (load.ln(), pass))
        .collect();
    if !points.iter().any(|p| p.1) || points.iter().all(|p| p.1) {
        return None;
    }
    let low = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) - MARGIN;
    let high = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max) + MARGIN;
    // A coarse pass over the whole range finds where the likelihood is high; the fine grid
    // covers only that stretch, one coarse step wider on each side (a perfectly separated
    // maximum, narrower than a coarse step, lies between two coarse points next to the best).
    let coarse = grid(&points, low, high, COARSE);
    let (at, top) = coarse
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.1))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let near = |p: &(f64, f64, f64, f64)| top - p.1 <= HALF_CHI2_95 + 1.0;
    let from = coarse[..=at].iter().rposition(|p| !near(p)).unwrap_or(0);
    let to = coarse[at..]
        .iter()
        .position(|p| !near(p))
        .map_or(coarse.len() - 1, |i| at + i);
    let profile = grid(
        &points,
        coarse[from].0 - COARSE,
        coarse[to].0 + COARSE,
        STEP,
    );
    let (best, &(c, top, k, h)) = profile
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))?;
    // The interval: the run of grid points around the maximum within the threshold.
    let within = |p: &(f64, f64, f64, f64)| top - p.1 <= HALF_CHI2_95;
    let first = profile[..=best]
        .iter()
        .rposition(|p| !within(p))
        .map_or(0, |i| i + 1);
    let last = profile[best..]
        .iter()
        .position(|p| !within(p))
        .map_or(profile.len() - 1, |i| best + i - 1);
    Some(Fit {
        capacity: c.exp(),
        ci95: (profile[first].0.exp(), profile[last].0.exp()),
        slope: k,
        hiccups: h,
    })
}

/// The profile likelihood from `low` to `high` (ln load) in steps of `step`: for each c, the
/// best log-likelihood over the slopes and hiccup shares, with the k and h that give it.
fn grid(points: &[(f64, bool)], low: f64, high: f64, step: f64) -> Vec<(f64, f64, f64, f64)> {
    let steps = ((high - low) / step).ceil().max(0.0) as usize;
    (0..=steps)
        .map(|i| {
            let c = low + i as f64 * step;
            let mut best = (f64::NEG_INFINITY, 0.0, 0.0);
            for j in 2..=22 {
                let k = 2f64.powf(f64::from(j) / 2.0);
                for h in HICCUPS {
                    let ll = log_likelihood(points, c, k, h);
                    if ll > best.0 {
                        best = (ll, k, h);
                    }
                }
            }
            (c, best.0, best.1, best.2)
        })
        .collect()
}

/// The log-likelihood of `points` (ln load, passed) under capacity e^c, slope k and a share h
/// of hiccups.
fn log_likelihood(points: &[(f64, bool)], c: f64, k: f64, h: f64) -> f64 {
    let pass_floor = (1.0 - h).ln();
    let ln_h = h.ln();
    points
        .iter()
        .map(|&(x, pass)| {
            // With z = k (x - c): P(pass) = (1 - h) / (1 + e^z) and
            // P(fail) = (e^z + h) / (1 + e^z), each taken as a logarithm without overflow.
            let z = k * (x - c);
            if pass {
                pass_floor - softplus(z)
            } else {
                log_add_exp(z, ln_h) - softplus(z)
            }
        })
        .sum()
}

/// ln(e^a + e^b), for any a and b (either may be -inf).
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (low - high).exp().ln_1p()
}

/// ln(1 + e^z), for any z.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Perfectly separated probes (every pass below every failure): the capacity lies
    /// between the highest pass and the lowest failure, close to their geometric middle, and
    /// the interval covers the gap.
    #[test]
    fn separated_probes_place_the_knee_in_the_gap() {
        let probes = [
            (5_000.0, true),
            (10_000.0, true),
            (20_000.0, true),
            (40_000.0, true),
            (80_000.0, false),
            (60_000.0, true),
            (70_000.0, false),
            (65_000.0, true),
            (67_500.0, false),
            (66_250.0, true),
        ];
        let fit = fit(&probes).unwrap();
        let middle = (66_250.0f64 * 67_500.0).sqrt();
        assert!(
            (fit.capacity / middle - 1.0).abs() < 0.01,
            "{fit:?} against {middle}"
        );
        assert!(fit.ci95.0 < 66_250.0 && fit.ci95.1 > 67_500.0, "{fit:?}");
        assert!(fit.ci95.0 > 40_000.0 && fit.ci95.1 < 80_000.0, "{fit:?}");
    }

    /// Probes drawn from a known knee (pass probability 1/2 at 100,000/s): the fit lands
    /// near it, and its interval covers it, where a single bisection of the same coin lands
    /// anywhere in the band.
    #[test]
    fn noisy_probes_find_the_half_way_load() {
        // A deterministic coin: the pass probability at each load, and enough probes at each
        // that their share of passes is that probability.
        let truth = |v: f64| 1.0 / (1.0 + (12.0 * (v / 100_000.0).ln()).exp());
        let mut probes = Vec::new();
        for v in [
            70_000.0, 80_000.0, 90_000.0, 95_000.0, 100_000.0, 105_000.0, 110_000.0, 125_000.0,
            140_000.0,
        ] {
            let passes = (truth(v) * 10.0).round() as usize;
            for i in 0..10 {
                probes.push((v, i < passes));
            }
        }
        let fit = fit(&probes).unwrap();
        assert!((fit.capacity / 100_000.0 - 1.0).abs() < 0.02, "{fit:?}");
        assert!(fit.ci95.0 < 100_000.0 && fit.ci95.1 > 100_000.0, "{fit:?}");
        assert!(fit.ci95.1 / fit.ci95.0 < 1.15, "{fit:?}");
        assert!((8.0..=23.0).contains(&fit.slope), "{fit:?}");
    }

    /// More probes make the interval narrower.
    #[test]
    fn more_probes_narrow_the_interval() {
        let once = [
            (90_000.0, true),
            (95_000.0, false),
            (100_000.0, true),
            (105_000.0, false),
        ];
        let thrice: Vec<(f64, bool)> = once.iter().cycle().take(12).copied().collect();
        let (one, three) = (fit(&once).unwrap(), fit(&thrice).unwrap());
        let width = |f: &Fit| f.ci95.1 / f.ci95.0;
        assert!(width(&three) < width(&one), "{one:?} {three:?}");
    }

    /// Failures far below the knee, as hiccups of the host make them, do not drag the
    /// capacity down: the fit gives them to the hiccup share.
    #[test]
    fn hiccups_far_below_the_knee_stay_hiccups() {
        let mut probes = Vec::new();
        for v in [20_000.0, 40_000.0, 60_000.0, 80_000.0, 90_000.0, 95_000.0] {
            probes.extend([(v, true), (v, true), (v, true), (v, true)]);
        }
        probes.extend([(40_000.0, false), (60_000.0, false)]);
        for v in [105_000.0, 110_000.0, 120_000.0] {
            probes.extend([(v, false), (v, false), (v, false)]);
        }
        let fit = fit(&probes).unwrap();
        assert!(
            fit.capacity > 95_000.0 && fit.capacity < 105_000.0,
            "{fit:?}"
        );
        assert!(fit.hiccups > 0.0, "{fit:?}");
    }

    /// ln(e^a + e^b) at the ends: one side -inf, equal sides, far apart.
    #[test]
    fn log_add_exp_at_the_extremes() {
        for (a, b, expected) in [
            (0.0, f64::NEG_INFINITY, 0.0),
            (f64::NEG_INFINITY, -3.0, -3.0),
            (1.0, 1.0, 1.0 + 2f64.ln()),
            (800.0, 0.0, 800.0),
        ] {
            assert!((log_add_exp(a, b) - expected).abs() < 1e-12, "{a} {b}");
        }
    }

    /// Nothing to fit: no probe, only passes, only failures, or loads that are not loads.
    #[test]
    fn no_knee_no_fit() {
        assert_eq!(fit(&[]), None);
        assert_eq!(fit(&[(1_000.0, true), (2_000.0, true)]), None);
        assert_eq!(fit(&[(1_000.0, false)]), None);
        assert_eq!(fit(&[(0.0, true), (f64::NAN, false)]), None);
    }

    /// ln(1 + e^z) without overflow or loss at either end.
    #[test]
    fn softplus_at_the_extremes() {
        for (z, expected) in [
            (0.0, 2f64.ln()),
            (800.0, 800.0),
            (-800.0, 0.0),
            (1.0, 1.313_261_687_518_223),
        ] {
            assert!(
                (softplus(z) - expected).abs() < 1e-12,
                "{z}: {}",
                softplus(z)
            );
        }
    }
}
