//! The publishers' side of a broadcast run: publishing through the warmup and the measured
//! window — open loop on the echo workers' timerfd pacer, or closed loop with `--pipeline` of a
//! publisher's own messages in flight — then the drain, and the counts taken after it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use echobench_core::Config;
use echobench_core::broadcast::{BroadcastCounts, BroadcastSummary};
use echobench_core::latency::Percentiles;
use echobench_core::monitor::{Bracket, CpuOf};
use echobench_core::thresholds::PACER_LATE;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{Stamp, encode};
use super::tracker::Fanout;
use super::{Outcome, State, Writer};
use crate::pacer::Pacer;

/// Open loop: when each publish is due. Publisher `p` of `P` sends its `seq`-th message at
/// `(seq + p / P) / rate_each` after publishing began, so the publishers interleave evenly.
/// Receivers use it for the corrected latency (from when a message was due, not from when a
/// publisher held back by the relay got to send it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Publishing began, in ns since the run's epoch.
    began_ns: u64,
    publishers: usize,
    /// Messages per second of each publisher.
    rate_each: f64,
}

impl Schedule {
    /// When publisher `p`'s `seq`-th message is due, in ns since the run's epoch.
    pub(super) fn due_ns(&self, p: usize, seq: u64) -> u64 {
        let at = (seq as f64 + p as f64 / self.publishers as f64) / self.rate_each;
        self.began_ns.saturating_add((at * 1e9).round() as u64)
    }
}

/// Publishes through the warmup and the window, then drains; returns the outcome.
pub(super) async fn publish(
    config: &Config,
    state: &Rc<RefCell<State>>,
    writers: Vec<Writer>,
    interrupt: &CancellationToken,
) -> Result<Outcome, String> {
    let publishers = writers.len();
    let size = config.size;
    let subscribers = config.connections;
    let epoch = state.borrow().epoch;
    let stop_publishing = CancellationToken::new();
    let failed: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    // Open loop: the echo workers' timerfd pacer releases each publish at its instant (tokio's
    // timer alone wakes up to a millisecond late).
    let pace = match config.rate {
        Some(rate) => {
            let schedule = Schedule {
                began_ns: state.borrow().now_ns(),
                publishers,
                rate_each: rate / publishers as f64,
            };
            state.borrow_mut().schedule = Some(schedule);
            let pacer = Pacer::new(publishers)
                .map_err(|err| format!("cannot create the pacer's timer: {err}"))?;
            Some((schedule, Rc::new(pacer)))
        }
        None => None,
    };
    let driver = pace.as_ref().map(|(_, pacer)| {
        let pacer = Rc::clone(pacer);
        tokio::task::spawn_local(async move {
            let _ = pacer.drive().await;
        })
    });
    let mut tasks = Vec::with_capacity(publishers);
    for (p, mut writer) in writers.into_iter().enumerate() {
        let state = Rc::clone(state);
        let pace = pace.clone();
        let stop = stop_publishing.clone();
        let failed = Rc::clone(&failed);
        let in_flight = config.pipeline.max(1);
        tasks.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; size];
            loop {
                let due = match &pace {
                    Some((schedule, pacer)) => {
                        let seq = state.borrow().sent[p];
                        let at = epoch + Duration::from_nanos(schedule.due_ns(p, seq));
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = pacer.until(p, at) => {}
                        }
                        Some(at)
                    }
                    // Closed loop: the next goes when one of this publisher's own comes back.
                    None => loop {
                        let wake = Rc::clone(&state.borrow().wake[p]);
                        if state.borrow().own_in_flight[p] < in_flight {
                            break None;
                        }
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = wake.notified() => {}
                        }
                    },
                };
                if stop.is_cancelled() {
                    return;
                }
                {
                    let mut s = state.borrow_mut();
                    let seq = s.sent[p];
                    s.sent[p] += 1;
                    s.own_in_flight[p] += 1;
                    if s.counting {
                        s.fanout.published(p as u32, seq);
                        let lag = due.map(|d| d.elapsed()).unwrap_or_default();
                        s.pacer_late += u64::from(lag > PACER_LATE);
                    }
                    let sent_ns = s.now_ns();
                    encode(
                        &mut buf,
                        Stamp {
                            publisher: p as u32,
                            seq,
                            sent_ns,
                        },
                    );
                }
                if let Err(failure) = writer.send(&buf).await {
                    failed
                        .borrow_mut()
                        .get_or_insert(format!("publisher {p} failed: {failure}"));
                    return;
                }
            }
        }));
    }

    // Warmup, then the window.
    let interrupted = tokio::select! {
        () = interrupt.cancelled() => true,
        () = tokio::time::sleep(config.warmup) => false,
    };
    let window = Bracket::open(CpuOf::Process);
    let window_start = Instant::now();
    let started_at = std::time::SystemTime::now();
    {
        let mut s = state.borrow_mut();
        s.counting = true;
        s.in_window = true;
        let alive = s.alive.iter().filter(|a| **a).count();
        s.fanout = Fanout::new(u32::try_from(alive).unwrap_or(u32::MAX));
        for p in 0..publishers {
            s.window[p] = (s.sent[p], u64::MAX);
        }
    }
    let interrupted = interrupted
        || tokio::select! {
            () = interrupt.cancelled() => true,
            () = tokio::time::sleep(config.duration) => false,
        };
    stop_publishing.cancel();
    // The CPU over the window, the span of `arrived_in_window` (the report's round trips):
    // the drain's work is for messages counted, but not timed, as the window's.
    let bracket = window.close();
    let measured = window_start.elapsed();
    let published = {
        let mut s = state.borrow_mut();
        s.in_window = false;
        let mut published = 0;
        for p in 0..publishers {
            let end = s.sent[p];
            s.window[p].1 = end;
            published += end - s.window[p].0;
        }
        published
    };
    for task in tasks {
        let _ = task.await;
    }
    if let Some(driver) = driver {
        driver.abort();
    }
    let idle_spin = pace.as_ref().map_or(Duration::ZERO, |(_, p)| p.idle_spin());
    if let Some(reason) = failed.borrow_mut().take() {
        return Err(reason);
    }

    // Drain: until every message has reached every subscriber still connected, or the
    // timeout. Checked every millisecond; nothing is sent meanwhile.
    let expected = published * u64::from(subscribers);
    let drain_deadline = Instant::now() + config.timeout;
    let drained = loop {
        if state.borrow().complete(published) {
            break true;
        }
        if Instant::now() >= drain_deadline || interrupt.is_cancelled() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let s = state.borrow();
    let delivered: u64 = s.had.iter().sum();
    let summary = BroadcastSummary {
        subscribers,
        publishers: publishers as u32,
        counts: BroadcastCounts {
            published,
            deliveries_expected: expected,
            delivered,
            missing: expected.saturating_sub(delivered),
            ..s.counts
        },
        arrived_in_window: s.arrived_in_window,
        deliveries_per_s: s.arrived_in_window as f64 / measured.as_secs_f64().max(1e-9),
        drained,
        delivery: Percentiles::of(&s.delivery),
        slowest: Percentiles::of(&s.slowest),
    };
    Ok(Outcome {
        summary,
        pacer_late: s.pacer_late,
        idle_spin,
        delivery: s.delivery.clone(),
        corrected: s.corrected.clone(),
        errors: s.errors.clone(),
        measured,
        started_at,
        interrupted,
        bracket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two publishers at 10/s each (20/s in all) interleave: 0 at 0, 100, 200 ms; 1 at 50,
    /// 150 ms; all after publishing began.
    #[test]
    fn publishers_interleave_on_the_schedule() {
        let schedule = Schedule {
            began_ns: 1_000,
            publishers: 2,
            rate_each: 10.0,
        };
        let due: Vec<u64> = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
            .iter()
            .map(|&(p, seq)| schedule.due_ns(p, seq) - 1_000)
            .collect();
        assert_eq!(due, [0, 50_000_000, 100_000_000, 150_000_000, 200_000_000]);
    }
}
