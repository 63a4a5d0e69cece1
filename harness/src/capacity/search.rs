//! The search for the highest load that still meets the SLO, as a pure state machine: it says
//! which value to probe next, is told whether the probe met the SLO, and ends with the highest
//! value that passed. No I/O, so every path is unit-tested with an oracle of known capacity.
//!
//! Two openings, one bisection:
//! - [`Search::exponential`] starts at a low value and multiplies it by `factor` until a probe
//!   fails (or the upper bound is reached), then bisects between the last pass and the first
//!   failure until they are within `tolerance` of each other (Nighthawk's adaptive load
//!   controller and the stepped websocket-bench do the same two phases).
//! - [`Search::around`] starts at a value found before, the confirmation of a capacity: the
//!   first probe is at that value, and the step away from it starts at `tolerance` and doubles
//!   until the boundary is bracketed again; then the same bisection.
//!
//! A pass is evidence that the capacity is at least the value; a failure that it is below it.
//! The load is assumed monotone (more load never turns a failure into a pass); when a noisy
//! probe breaks that, the bracket still narrows and the result is the highest pass inside it.

/// What a probe showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The SLO held at this value.
    Pass,
    /// It did not.
    Fail,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Probe this value.
    Probe(f64),
    /// The search is over.
    Done(Found),
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// The highest value that passed (0 when none did).
    pub capacity: f64,
    /// The lowest value that failed above it, when one did.
    pub failed_at: Option<f64>,
    /// How the search ended.
    pub end: End,
}

/// Why a search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The boundary was bracketed to within the tolerance.
    Converged,
    /// Even the upper bound passed: the capacity is at least `capacity`.
    AtMaximum,
    /// Even the lower bound failed: the SLO does not hold at any load searched.
    BelowMinimum,
    /// The probe budget ran out before convergence.
    OutOfProbes,
    /// Stopped from outside (a probe that produced no measurement): the capacity is at least
    /// the highest pass so far.
    Stopped,
    /// Converged, but against a probe that could not be trusted (the client's own limit, or
    /// steal): the capacity is at least this.
    Untrusted,
}

impl End {
    /// As written in results.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Converged => "converged",
            End::AtMaximum => "at_maximum",
            End::BelowMinimum => "below_minimum",
            End::OutOfProbes => "out_of_probes",
            End::Stopped => "stopped",
            End::Untrusted => "untrusted",
        }
    }
}

/// Where a search may go, and how finely.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The lowest value worth probing.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// Bisection stops when the failing value is within this fraction above the passing one.
    pub tolerance: f64,
    /// Values are whole numbers (connections), and a bracket one apart has converged.
    pub integer: bool,
    /// Most probes one search may make.
    pub max_probes: u32,
}

/// One search in progress.
#[derive(Debug, Clone)]
pub struct Search {
    bounds: Bounds,
    /// The first value to probe.
    start: f64,
    /// Highest pass and lowest failure so far.
    pass: Option<f64>,
    fail: Option<f64>,
    /// Before a bracket exists: the multiplier for the next step away from the last probe.
    factor: f64,
    /// Whether `factor` doubles its distance from 1 after each step (the confirmation's
    /// widening steps) or stays (the exponential opening).
    widening: bool,
    probes: u32,
}

impl Search {
    /// Starts at `start` and multiplies by `factor` until a failure, then bisects.
    pub fn exponential(start: f64, factor: f64, bounds: Bounds) -> Search {
        Search::new(start, factor, false, bounds)
    }

    /// Starts at `found` and steps away from it by `tolerance`, doubling, then bisects.
    pub fn around(found: f64, bounds: Bounds) -> Search {
        Search::new(found, 1.0 + bounds.tolerance, true, bounds)
    }

    fn new(start: f64, factor: f64, widening: bool, bounds: Bounds) -> Search {
        Search {
            start: bounds.round(start.clamp(bounds.min, bounds.max)),
            bounds,
            pass: None,
            fail: None,
            factor,
            widening,
            probes: 0,
        }
    }

    /// The next step.
    pub fn next(&self) -> Step {
        let b = &self.bounds;
        let done = |end| {
            Step::Done(Found {
                capacity: self.pass.unwrap_or(0.0),
                failed_at: self.fail,
                end,
            })
        };
        let value = match (self.pass, self.fail) {
            (None, None) => self.start,
            (Some(pass), None) if pass >= b.max => return done(End::AtMaximum),
            (Some(pass), None) => b
                .round((pass * self.factor).min(b.max))
                .max(pass + b.unit()),
            (None, Some(fail)) if fail <= b.min => return done(End::BelowMinimum),
            (None, Some(fail)) => b
                .round((fail / self.factor).max(b.min))
                .min(fail - b.unit()),
            (Some(pass), Some(fail)) => {
                if b.converged(pass, fail) {
                    return done(End::Converged);
                }
                b.round((pass + fail) / 2.0)
            }
        };
        if self.probes >= b.max_probes {
            return done(End::OutOfProbes);
        }
        Step::Probe(value)
    }

    /// Records what the probe of `value` showed.
    pub fn record(&mut self, value: f64, verdict: Verdict) {
        self.probes += 1;
        match verdict {
            Verdict::Pass => {
                self.pass = Some(self.pass.map_or(value, |p| p.max(value)));
                // A pass at or above a failure (noise): the failure no longer brackets.
                if self.fail.is_some_and(|f| f <= value) {
                    self.fail = None;
                }
            }
            Verdict::Fail => {
                self.fail = Some(self.fail.map_or(value, |f| f.min(value)));
                if self.pass.is_some_and(|p| p >= value) {
                    self.pass = None;
                }
            }
        }
        // The first probe is at the start itself; each step away from it after that is
        // twice as far as the one before.
        if self.widening && self.probes >= 2 {
            self.factor = 1.0 + (self.factor - 1.0) * 2.0;
        }
    }

    /// Ends the search where it stands.
    pub fn stop(&self) -> Found {
        Found {
            capacity: self.pass.unwrap_or(0.0),
            failed_at: self.fail,
            end: End::Stopped,
        }
    }

    /// Probes made so far.
    pub fn probes(&self) -> u32 {
        self.probes
    }
}

impl Bounds {
    fn round(&self, value: f64) -> f64 {
        if self.integer {
            value.round().max(1.0)
        } else {
            value
        }
    }

    /// The smallest step between two distinct values.
    fn unit(&self) -> f64 {
        if self.integer { 1.0 } else { 0.0 }
    }

    fn converged(&self, pass: f64, fail: f64) -> bool {
        fail <= pass * (1.0 + self.tolerance) || (self.integer && fail - pass <= 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Bounds = Bounds {
        min: 10.0,
        max: 2_000_000.0,
        tolerance: 0.02,
        integer: false,
        max_probes: 40,
    };

    /// Runs a search against a server whose SLO holds exactly up to `capacity`; returns the
    /// result and every value probed.
    fn run(mut search: Search, capacity: f64) -> (Found, Vec<f64>) {
        let mut probed = Vec::new();
        loop {
            match search.next() {
                Step::Probe(v) => {
                    probed.push(v);
                    let verdict = if v <= capacity {
                        Verdict::Pass
                    } else {
                        Verdict::Fail
                    };
                    search.record(v, verdict);
                }
                Step::Done(found) => return (found, probed),
            }
        }
    }

    /// Whatever the true capacity, the exponential search lands at most 2% below it, never
    /// above, and its first failure is within 2% above the result.
    #[test]
    fn exponential_lands_within_tolerance() {
        for capacity in [10.0, 137.0, 1_000.0, 4_999.0, 63_000.0, 1_234_567.0] {
            let (found, probed) = run(Search::exponential(1_000.0, 2.0, RATE), capacity);
            assert_eq!(found.end, End::Converged, "{capacity}: {probed:?}");
            assert!(found.capacity <= capacity, "{capacity}: {found:?}");
            assert!(found.capacity >= capacity / 1.02, "{capacity}: {found:?}");
            let failed = found.failed_at.unwrap();
            assert!(
                failed <= found.capacity * 1.02 && failed > capacity,
                "{found:?}"
            );
            assert!(probed.len() < 20, "{capacity}: {} probes", probed.len());
        }
    }

    /// The probes of one search, exactly: doubling from 1,000 to the first failure at 8,000,
    /// then halving the bracket until 2% wide.
    #[test]
    fn exponential_probe_sequence() {
        let (found, probed) = run(Search::exponential(1_000.0, 2.0, RATE), 5_000.0);
        assert_eq!(
            probed,
            [
                1000.0, 2000.0, 4000.0, 8000.0, 6000.0, 5000.0, 5500.0, 5250.0, 5125.0, 5062.5
            ]
        );
        assert_eq!(found.capacity, 5000.0);
        assert_eq!(found.failed_at, Some(5062.5));
    }

    /// The ends: everything passes (capacity at least the maximum), nothing passes (below
    /// the minimum), and a budget of probes that runs out first.
    #[test]
    fn ends_at_the_bounds_and_the_budget() {
        let (found, _) = run(Search::exponential(1_000.0, 2.0, RATE), f64::INFINITY);
        assert_eq!((found.end, found.capacity), (End::AtMaximum, 2_000_000.0));
        let (found, probed) = run(Search::exponential(1_000.0, 2.0, RATE), 1.0);
        assert_eq!((found.end, found.capacity), (End::BelowMinimum, 0.0));
        assert_eq!(probed.last(), Some(&10.0));
        let tight = Bounds {
            max_probes: 3,
            ..RATE
        };
        let (found, probed) = run(Search::exponential(1_000.0, 2.0, tight), 50_000.0);
        assert_eq!((found.end, probed.len()), (End::OutOfProbes, 3));
        assert_eq!(found.capacity, 4_000.0);
    }

    /// A confirmation starts at the value found and needs few probes when the capacity has
    /// not moved; when it has moved (either way), it widens its steps and still converges.
    #[test]
    fn around_confirms_and_follows_a_move() {
        let (found, probed) = run(Search::around(5_000.0, RATE), 5_050.0);
        assert_eq!(probed[0], 5_000.0);
        assert_eq!(probed.len(), 2, "{probed:?}");
        assert_eq!((found.end, found.capacity), (End::Converged, 5_000.0));
        for capacity in [3_000.0, 4_900.0, 5_400.0, 9_000.0] {
            let (found, probed) = run(Search::around(5_000.0, RATE), capacity);
            assert_eq!(found.end, End::Converged, "{capacity}: {probed:?}");
            assert!(
                found.capacity <= capacity && found.capacity >= capacity / 1.02,
                "{capacity}: {found:?} after {probed:?}"
            );
        }
    }

    /// Whole numbers: connection counts are probed as integers and a bracket one apart has
    /// converged, even where 2% of the value is less than one.
    #[test]
    fn integer_search() {
        let bounds = Bounds {
            min: 1.0,
            max: 20_000.0,
            tolerance: 0.02,
            integer: true,
            max_probes: 40,
        };
        for capacity in [1.0, 7.0, 33.0, 1_500.0] {
            let (found, probed) = run(Search::exponential(4.0, 2.0, bounds), capacity);
            assert!(probed.iter().all(|v| v.fract() == 0.0), "{probed:?}");
            assert_eq!(found.end, End::Converged, "{capacity}: {probed:?}");
            assert!(found.capacity <= capacity && found.capacity >= (capacity / 1.02).floor());
        }
        let (found, _) = run(Search::exponential(4.0, 2.0, bounds), 0.5);
        assert_eq!(found.end, End::BelowMinimum);
    }

    /// A noisy pass above an earlier failure drops that failure: the bracket is rebuilt from
    /// what the latest probes say, and the search still ends.
    #[test]
    fn noise_rebuilds_the_bracket() {
        let mut search = Search::exponential(1_000.0, 2.0, RATE);
        search.record(1_000.0, Verdict::Pass);
        search.record(2_000.0, Verdict::Fail);
        search.record(1_500.0, Verdict::Pass);
        search.record(2_500.0, Verdict::Pass);
        assert_eq!(search.next(), Step::Probe(5_000.0));
        search.record(5_000.0, Verdict::Fail);
        search.record(3_000.0, Verdict::Fail);
        assert_eq!(search.next(), Step::Probe(2_750.0));
    }
}
