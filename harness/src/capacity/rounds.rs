//! The order of a capacity run: every target searched once, then confirmed `confirm` times,
//! rounds interleaved over servers, each search against a fresh server session; within a
//! search, each probe run until it can be trusted and a failure rechecked before the search
//! believes it. Everything is recorded in the target's [`CapacityResult`].

use super::search::{End, Search, Step, Verdict};
use super::settings::{Mode, SearchSection};
use super::{
    CapacityResult, Distrust, Executor, Observer, ProbeLoad, ProbeRecord, STEAL_BACKOFF,
    describe_value, probe_load, target_name,
};
use crate::matrix::Cell;

/// Searches every target, rounds interleaved; returns one result per target.
pub async fn search_all<E: Executor>(
    targets: &[Cell],
    settings: &SearchSection,
    slo: &str,
    executor: &mut E,
    observer: &mut impl Observer,
) -> Vec<CapacityResult> {
    let mut results: Vec<CapacityResult> = targets
        .iter()
        .map(|target| CapacityResult {
            target: target.clone(),
            mode: settings.mode,
            slo: slo.to_owned(),
            estimates: Vec::new(),
            ends: Vec::new(),
            probes: Vec::new(),
            confirmed: 0,
            confirmations: 0,
            limited_by: None,
            per_connection_rate: (settings.mode == Mode::Connections)
                .then_some(settings.per_connection_rate),
        })
        .collect();
    for round in 0..=settings.confirm {
        for i in 0..results.len() {
            if executor.interrupted() {
                return results;
            }
            let result = &results[i];
            // Confirm only what a first search found on its own, inside its bounds.
            if round > 0 && result.ends.first() != Some(&End::Converged) {
                continue;
            }
            let search = match result.estimates.first() {
                Some(&found) if round > 0 => Search::around(found, settings.bounds()),
                _ => Search::exponential(settings.start, settings.factor, settings.bounds()),
            };
            run_search(&mut results, i, round, search, settings, executor, observer).await;
            observer.searched(&results, i);
        }
    }
    results
}

/// One search of one target against a fresh session.
async fn run_search<E: Executor>(
    results: &mut [CapacityResult],
    i: usize,
    round: u32,
    mut search: Search,
    settings: &SearchSection,
    executor: &mut E,
    observer: &mut impl Observer,
) {
    let target = results[i].target.clone();
    if let Err(reason) = executor.start(&target, round).await {
        results[i].limited_by = Some(reason);
        return;
    }
    let mut ceilings: Vec<(f64, String)> = Vec::new();
    let found = loop {
        let value = match search.next() {
            Step::Probe(value) => value,
            Step::Done(found) => break Some(found),
        };
        if executor.interrupted() {
            break None;
        }
        let load = probe_load(&target, value, settings);
        let index = search.probes() + 1;
        let at = Attempt {
            round,
            index,
            value,
            load,
        };
        let (mut verdict, distrust) =
            probe_trusted(results, i, &at, 0, settings, executor, observer).await;
        // A failure is probed again before the search believes it: near the knee, and
        // sometimes far below it, a probe fails on a hiccup of the host (late sends just over
        // 1% at a load that passes before and after), and a bisection never goes back above a
        // failure. Every probe stays in the record, and the fit weighs them all.
        for again in 1..=settings.recheck {
            if verdict != Some(Verdict::Fail) || executor.interrupted() {
                break;
            }
            match probe_trusted(results, i, &at, again, settings, executor, observer)
                .await
                .0
            {
                Some(Verdict::Pass) => verdict = Some(Verdict::Pass),
                Some(Verdict::Fail) => {}
                // A recheck that could not be trusted says nothing: the failure stands.
                None => break,
            }
        }
        let result = &mut results[i];
        let reason = result
            .probes
            .last()
            .map(|p| p.reason.clone())
            .unwrap_or_default();
        match (verdict, distrust) {
            (Some(v), _) => {
                // A confirmation's first probe is at the value the first search found.
                if round > 0 && search.probes() == 0 {
                    result.confirmations += 1;
                    result.confirmed += u32::from(v == Verdict::Pass);
                }
                search.record(value, v);
            }
            // The client cannot offer this load, every time: the search goes on below it as if
            // it had failed, and says so if it ends up the bracket's upper end.
            (None, Some(Distrust::Client(_))) => {
                search.record(value, Verdict::Fail);
                ceilings.push((value, reason));
            }
            // Steal that did not pass, or no measurement at all: nothing more can be learnt
            // here now; the capacity is at least the highest pass so far.
            (None, _) => {
                result.limited_by = Some(format!(
                    "stopped at {} {}: {reason}",
                    describe_value(value, settings.mode),
                    if round == 0 {
                        "in the first search"
                    } else {
                        "in a confirmation"
                    },
                ));
                break Some(search.stop());
            }
        }
    };
    let found = found.map(|mut found| {
        if let Some((value, reason)) = ceilings.iter().find(|(v, _)| Some(*v) == found.failed_at) {
            found.end = End::Untrusted;
            // A confirmation that ends this way is a lower bound, left out of the mean (see
            // `counted`); only the first search's speaks for the whole result.
            if round == 0 {
                results[i].limited_by = Some(format!(
                    "at least this: the probe above it, at {}, could not be trusted ({reason})",
                    describe_value(*value, settings.mode)
                ));
            }
        }
        found
    });
    executor.stop().await;
    if let Some(found) = found {
        results[i].estimates.push(found.capacity);
        results[i].ends.push(found.end);
    }
}

/// Where one probe of a search is: its search, its number, the value and the load.
struct Attempt {
    round: u32,
    index: u32,
    value: f64,
    load: ProbeLoad,
}

/// Probes `at` until it is trusted, at most `[search] redo` more times, recording every run;
/// returns the trusted verdict, or why the last run was not trusted. `again` numbers the
/// rechecks of a failure (0: the probe itself).
async fn probe_trusted<E: Executor>(
    results: &mut [CapacityResult],
    i: usize,
    at: &Attempt,
    again: u32,
    settings: &SearchSection,
    executor: &mut E,
    observer: &mut impl Observer,
) -> (Option<Verdict>, Option<Distrust>) {
    let target = results[i].target.clone();
    let (round, index) = (at.round, at.index);
    let mut verdict = None;
    let mut distrust = None;
    for attempt in 0..=settings.redo {
        let mut name = format!("{}-s{round}-p{index}", target_name(&target));
        if again > 0 {
            name.push_str(&format!("-again{again}"));
        }
        if attempt > 0 {
            name.push_str(&format!("-redo{attempt}"));
        }
        let outcome = executor.probe(&target, at.load, &name).await;
        let mut record = ProbeRecord {
            search: round,
            index,
            again,
            value: at.value,
            load: at.load,
            measured: None,
            verdict: None,
            reason: String::new(),
            redone: false,
        };
        distrust = None;
        match outcome {
            Err(reason) => record.reason = reason,
            Ok(measured) => {
                // A pass despite steal, a busy client or a late pacer is still a pass: none
                // of them makes the SLO easier to meet. A failure under them may be theirs,
                // not the server's.
                match measured
                    .untrusted(settings.max_steal_percent, settings.max_pacer_late_percent)
                    .filter(|_| !measured.slo_met)
                {
                    Some(why) => {
                        record.reason = why.to_string();
                        distrust = Some(why);
                    }
                    None => {
                        let v = if measured.slo_met {
                            Verdict::Pass
                        } else {
                            Verdict::Fail
                        };
                        record.verdict = Some(v);
                        verdict = Some(v);
                    }
                }
                record.measured = Some(measured);
            }
        }
        let retry = verdict.is_none() && attempt < settings.redo;
        record.redone = retry;
        results[i].probes.push(record);
        observer.probed(results, i);
        if !retry {
            break;
        }
        // Steal comes and goes: give the host a moment (1 s, then 2 s, ...) before the same
        // load is tried again.
        if let Some(Distrust::Steal(_)) = distrust {
            executor.pause(STEAL_BACKOFF * 2u32.pow(attempt)).await;
        }
    }
    (verdict, distrust)
}
