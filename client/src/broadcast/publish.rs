//! The publishers' side of a broadcast run: publishing, on a thread of its own, through the
//! warmup and the measured window — open loop on the echo workers' timerfd pacer, or closed
//! loop with `--pipeline` of a publisher's own messages in flight — then the drain, and the
//! counts taken after it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use echobench_core::Config;
use echobench_core::broadcast::{BroadcastCounts, BroadcastSummary};
use echobench_core::latency::Percentiles;
use echobench_core::monitor::{Bracket, CpuOf};
use echobench_core::thresholds::PACER_LATE;
use tokio::sync::Notify;
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

/// What the publisher thread and the connection tasks share.
pub(super) struct Shared {
    /// Per publisher, messages sent so far (its next sequence number), counted or not;
    /// raised before each send, so a receiver never sees a sequence number it does not cover.
    pub(super) sent: Vec<AtomicU64>,
    /// Per publisher, the window's first sequence number (`u64::MAX` until the window opens):
    /// a publish from there on that leaves late is counted.
    window_first: Vec<AtomicU64>,
    /// Closed loop: per publisher, its own messages in flight, and the wake-up when one of
    /// them comes back.
    own_in_flight: Vec<AtomicUsize>,
    wake: Vec<Notify>,
}

impl Shared {
    pub(super) fn new(publishers: usize) -> Shared {
        Shared {
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            window_first: (0..publishers).map(|_| AtomicU64::new(u64::MAX)).collect(),
            own_in_flight: (0..publishers).map(|_| AtomicUsize::new(0)).collect(),
            wake: (0..publishers).map(|_| Notify::new()).collect(),
        }
    }

    /// One of publisher `p`'s own messages came back to it.
    pub(super) fn returned(&self, p: usize) {
        let _ = self.own_in_flight[p]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.wake[p].notify_one();
    }
}

/// What the publisher thread reports when it stops.
struct Published {
    /// Open loop: the window's publishes that left more than `PACER_LATE` after they were
    /// due (the client's own doing: a publisher never waits for an answer).
    pacer_late: u64,
    /// The pacer's busy-waiting with nothing else to do.
    idle_spin: Duration,
    /// Why a publisher stopped before it was told to.
    failed: Option<String>,
}

/// Publishes through the warmup and the window, then drains; returns the outcome.
///
/// The publishers run on a thread of their own (on the client's CPUs): on the subscribers'
/// event loop a due publish waited behind every subscriber with a message to read, ~9 ms at
/// 1,000 subscribers x 100 messages/s (292 of 300 publishes late), which the corrected latency
/// then charged to the relay.
pub(super) async fn publish(
    config: &Config,
    state: &Rc<RefCell<State>>,
    writers: Vec<Writer>,
    interrupt: &CancellationToken,
) -> Result<Outcome, String> {
    let publishers = writers.len();
    let subscribers = config.connections;
    let shared = Arc::clone(&state.borrow().shared);
    let schedule = config.rate.map(|rate| Schedule {
        began_ns: state.borrow().now_ns(),
        publishers,
        rate_each: rate / publishers as f64,
    });
    state.borrow_mut().schedule = schedule;
    let stop_publishing = CancellationToken::new();
    let abandon = CancellationToken::new();
    let (report, published_rx) = tokio::sync::oneshot::channel();
    let plan = Plan {
        epoch: state.borrow().epoch,
        size: config.size,
        schedule,
        pacer_spin: config.pacer_spin,
        in_flight: config.pipeline.max(1),
        shared: Arc::clone(&shared),
        stop: stop_publishing.clone(),
        abandon: abandon.clone(),
    };
    std::thread::Builder::new()
        .name("publishers".to_owned())
        .spawn(move || {
            let _ = report.send(plan.run(writers));
        })
        .map_err(|err| format!("cannot start the publishers' thread: {err}"))?;

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
            let first = shared.sent[p].load(Ordering::Acquire);
            s.window[p] = (first, u64::MAX);
            s.registered[p] = first;
            shared.window_first[p].store(first, Ordering::Release);
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
    state.borrow_mut().in_window = false;
    // A publisher in the middle of a send finishes it (its message is the window's), unless
    // the relay has stopped reading it for --timeout.
    let mut published_rx = published_rx;
    let outcome = match tokio::time::timeout(config.timeout, &mut published_rx).await {
        Ok(outcome) => outcome,
        Err(_) => {
            abandon.cancel();
            return Err(format!(
                "a publisher could not finish a send within --timeout {} after the window: the relay stopped reading it",
                humantime::format_duration(config.timeout)
            ));
        }
    };
    let Published {
        pacer_late,
        idle_spin,
        failed,
    } = outcome.map_err(|_| "the publishers' thread ended without a word".to_owned())??;
    if let Some(reason) = failed {
        return Err(reason);
    }
    let published = {
        let mut s = state.borrow_mut();
        let mut published = 0;
        for p in 0..publishers {
            let end = shared.sent[p].load(Ordering::Acquire);
            s.window[p].1 = end;
            published += end - s.window[p].0;
        }
        published
    };

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
        pacer_late,
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

/// Everything the publisher thread needs.
struct Plan {
    epoch: Instant,
    size: usize,
    /// Open loop; closed loop without.
    schedule: Option<Schedule>,
    /// `--pacer-spin`, for the publishers' pacer.
    pacer_spin: Duration,
    /// Closed loop: own messages in flight per publisher.
    in_flight: usize,
    shared: Arc<Shared>,
    /// Publish nothing more.
    stop: CancellationToken,
    /// Give up on a send the relay is not reading.
    abandon: CancellationToken,
}

impl Plan {
    /// The publisher thread: one task per publisher on a runtime of its own, until `stop`.
    fn run(self, writers: Vec<Writer>) -> Result<Published, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the publishers' runtime: {err}"))?;
        let local = tokio::task::LocalSet::new();
        runtime.block_on(local.run_until(self.publish(writers)))
    }

    async fn publish(self, writers: Vec<Writer>) -> Result<Published, String> {
        let publishers = writers.len();
        // Open loop: the echo workers' timerfd pacer releases each publish at its instant
        // (tokio's timer alone wakes up to a millisecond late).
        let pacer = match self.schedule {
            Some(_) => Some(Rc::new(
                Pacer::new(publishers, self.pacer_spin)
                    .map_err(|err| format!("cannot create the pacer's timer: {err}"))?,
            )),
            None => None,
        };
        let driver = pacer.clone().map(|pacer| {
            tokio::task::spawn_local(async move {
                let _ = pacer.drive().await;
            })
        });
        let plan = Rc::new(self);
        let mut tasks = Vec::with_capacity(publishers);
        for (p, writer) in writers.into_iter().enumerate() {
            let plan = Rc::clone(&plan);
            let pacer = pacer.clone();
            tasks.push(tokio::task::spawn_local(async move {
                plan.publisher(p, writer, pacer.as_deref()).await
            }));
        }
        let mut published = Published {
            pacer_late: 0,
            idle_spin: Duration::ZERO,
            failed: None,
        };
        for task in tasks {
            match task.await {
                Ok(Ok(late)) => published.pacer_late += late,
                Ok(Err(reason)) => {
                    published.failed.get_or_insert(reason);
                }
                Err(err) => {
                    published
                        .failed
                        .get_or_insert(format!("a publisher task failed: {err}"));
                }
            }
        }
        if let Some(driver) = driver {
            driver.abort();
        }
        published.idle_spin = pacer.as_ref().map_or(Duration::ZERO, |p| p.idle_spin());
        Ok(published)
    }

    /// Publisher `p` until told to stop; returns its late publishes in the window.
    async fn publisher(
        &self,
        p: usize,
        mut writer: Writer,
        pacer: Option<&Pacer>,
    ) -> Result<u64, String> {
        let shared = &self.shared;
        let mut buf = vec![0u8; self.size];
        let mut late = 0;
        loop {
            let seq = shared.sent[p].load(Ordering::Acquire);
            let due = match (&self.schedule, pacer) {
                (Some(schedule), Some(pacer)) => {
                    let at = self.epoch + Duration::from_nanos(schedule.due_ns(p, seq));
                    tokio::select! {
                        () = self.stop.cancelled() => return Ok(late),
                        () = pacer.until(p, at) => {}
                    }
                    Some(at)
                }
                // Closed loop: the next goes when one of this publisher's own comes back.
                _ => loop {
                    let wake = shared.wake[p].notified();
                    if shared.own_in_flight[p].load(Ordering::Acquire) < self.in_flight {
                        break None;
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => return Ok(late),
                        () = wake => {}
                    }
                },
            };
            if self.stop.is_cancelled() {
                return Ok(late);
            }
            if seq >= shared.window_first[p].load(Ordering::Acquire) {
                let lag = due.map(|d| d.elapsed()).unwrap_or_default();
                late += u64::from(lag > PACER_LATE);
            }
            shared.own_in_flight[p].fetch_add(1, Ordering::AcqRel);
            shared.sent[p].store(seq + 1, Ordering::Release);
            let sent_ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            encode(
                &mut buf,
                Stamp {
                    publisher: p as u32,
                    seq,
                    sent_ns,
                },
            );
            tokio::select! {
                sent = writer.send(&buf) => {
                    if let Err(failure) = sent {
                        // The relay dropped this subscriber (e.g. closed it 1008 for a full
                        // queue) or the connection failed: its reader counts the drop, and the
                        // message that did not leave is taken back, so no receiver expects it.
                        shared.sent[p].store(seq, Ordering::Release);
                        let _ = shared.own_in_flight[p].fetch_update(
                            Ordering::AcqRel,
                            Ordering::Acquire,
                            |n| n.checked_sub(1),
                        );
                        tracing::debug!(publisher = p, %failure, "publisher stopped: its connection is gone");
                        return Ok(late);
                    }
                }
                () = self.abandon.cancelled() => return Ok(late),
            }
        }
    }
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
