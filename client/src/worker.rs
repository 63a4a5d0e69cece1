//! A worker thread: its own current-thread tokio runtime running its share of the virtual
//! clients as local tasks (like wrk's per-thread event loop — no work stealing, no locks, no
//! contended atomics). They record into one [`Recorder`] owned by the thread. A supervisor task
//! on the same thread ticks the seconds, discards the warmup, and at the deadline freezes the
//! numbers in the same poll in which it stops the clients, so nothing is recorded after it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Failure;
use crate::monitor;
use crate::protocol::Connection;
use crate::recorder::{Interval, Recorder, Totals};
use crate::schedule::{self, Schedule};
use crate::target::Target;

/// When the phases of a run begin and end (shared by all workers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Load starts (warmup begins); open-loop schedules count from here.
    pub start: Instant,
    /// Measurement begins.
    pub warmup_end: Instant,
    /// Measurement ends.
    pub deadline: Instant,
}

/// One worker's share of the run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Worker number (also the top 16 bits of its message ids).
    pub id: usize,
    /// Indexes (over all workers) of this worker's virtual clients.
    pub clients: Vec<u32>,
    /// Round trips this worker may attempt, with `--total`.
    pub quota: Option<u64>,
}

/// What a worker tells the coordinator.
#[derive(Debug)]
pub(crate) enum Event {
    /// A second (or the final part of one) of the measured window.
    Interval {
        worker: usize,
        index: u32,
        duration: Duration,
        interval: Box<Interval>,
    },
    /// The worker stopped.
    Done {
        worker: usize,
        result: Box<Finished>,
    },
    /// The worker could not start.
    Failed { worker: usize, reason: String },
}

/// A worker's final numbers.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Everything recorded in the measured window.
    pub totals: Totals,
    /// Round trips in flight when the worker stopped.
    pub in_flight: u64,
    /// This thread's CPU time over the measured window.
    pub thread_cpu: Duration,
    /// When it stopped.
    pub stopped_at: Instant,
}

/// Starts a worker thread running connections of type `C`.
pub(crate) fn spawn<C: Connection + 'static>(
    plan: Plan,
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    stop: CancellationToken,
    events: UnboundedSender<Event>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("echo-worker-{}", plan.id))
        .spawn(move || {
            let worker = plan.id;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = events.send(Event::Failed {
                        worker,
                        reason: format!("cannot start a tokio runtime: {err}"),
                    });
                    return;
                }
            };
            let local = LocalSet::new();
            local.block_on(
                &runtime,
                supervise::<C>(plan, config, target, timing, stop, events),
            );
        })
}

/// State shared by the virtual clients of one worker (single-threaded: `Cell`/`RefCell`).
struct Ctx {
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    recorder: RefCell<Recorder>,
    /// Round trips left to attempt with `--total`.
    quota: Cell<Option<u64>>,
    /// The next message id.
    next_id: Cell<u64>,
}

impl Ctx {
    /// Reserves the round trips a new connection may do: `roundtrips` (or what is left of the
    /// quota), unlimited with `-r 0`. `None` when the quota is used up.
    fn claim(&self) -> Option<u64> {
        let per_connection = match self.config.roundtrips {
            0 => u64::MAX,
            r => r,
        };
        match self.quota.get() {
            None => Some(per_connection),
            Some(0) => None,
            // With -r 0 tickets are taken per round trip (`take_ticket`), not per connection.
            Some(_) if self.config.roundtrips == 0 => Some(u64::MAX),
            Some(left) => {
                let take = per_connection.min(left);
                self.quota.set(Some(left - take));
                Some(take)
            }
        }
    }

    /// Gives back round trips a connection reserved but did not attempt.
    fn unclaim(&self, unused: u64) {
        if self.config.roundtrips != 0
            && let Some(left) = self.quota.get()
        {
            self.quota.set(Some(left + unused));
        }
    }

    /// With `-r 0` and a quota: takes one round trip's ticket; false when none is left.
    fn take_ticket(&self) -> bool {
        if self.config.roundtrips != 0 {
            return true;
        }
        match self.quota.get() {
            None => true,
            Some(0) => false,
            Some(left) => {
                self.quota.set(Some(left - 1));
                true
            }
        }
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        id
    }
}

/// How the worker's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Deadline,
    QuotaDone,
    Interrupted,
}

async fn supervise<C: Connection + 'static>(
    plan: Plan,
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    stop: CancellationToken,
    events: UnboundedSender<Event>,
) {
    let worker = plan.id;
    let ctx = Rc::new(Ctx {
        recorder: RefCell::new(Recorder::new(config.rate.is_some())),
        quota: Cell::new(plan.quota),
        next_id: Cell::new((worker as u64) << 48),
        config,
        target,
        timing,
    });
    let mut clients = JoinSet::new();
    for &index in &plan.clients {
        clients.spawn_local(virtual_client::<C>(Rc::clone(&ctx), index));
    }

    let second = Duration::from_secs(1);
    let mut measuring = timing.warmup_end <= timing.start;
    let mut cpu_start = monitor::thread_cpu();
    let mut interval_start = timing.warmup_end;
    let mut next_tick = if measuring {
        timing.warmup_end + second
    } else {
        timing.warmup_end
    };
    let mut index: u32 = 0;
    let reason = loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break Stop::Interrupted,
            () = sleep_until(timing.deadline) => break Stop::Deadline,
            () = sleep_until(next_tick) => {
                if measuring {
                    let interval = ctx.recorder.borrow_mut().take_interval();
                    let _ = events.send(Event::Interval { worker, index, duration: second, interval: Box::new(interval) });
                    index += 1;
                    interval_start = next_tick;
                } else {
                    // The warmup is over: forget it and start the clock.
                    ctx.recorder.borrow_mut().reset();
                    cpu_start = monitor::thread_cpu();
                    measuring = true;
                }
                next_tick += second;
            }
            joined = clients.join_next() => match joined {
                None => break Stop::QuotaDone,
                Some(Err(err)) if err.is_panic() => tracing::error!(worker, "a virtual client panicked"),
                Some(_) => {}
            },
        }
    };

    // Freeze the numbers before anything else can run on this thread.
    let stopped_at = Instant::now().min(timing.deadline.max(timing.warmup_end));
    let mut recorder = ctx.recorder.borrow_mut();
    if !measuring {
        // Stopped during the warmup: nothing was measured.
        recorder.reset();
    }
    let in_flight = match reason {
        Stop::QuotaDone => 0,
        Stop::Deadline | Stop::Interrupted => recorder.in_flight(),
    };
    let tail = stopped_at.saturating_duration_since(interval_start);
    let interval = recorder.take_interval();
    if measuring && (!tail.is_zero() || interval.round_trips + interval.errors > 0) {
        let _ = events.send(Event::Interval {
            worker,
            index,
            duration: tail,
            interval: Box::new(interval),
        });
    }
    let finished = Finished {
        totals: recorder.totals().clone(),
        in_flight,
        thread_cpu: monitor::thread_cpu().saturating_sub(cpu_start),
        stopped_at,
    };
    drop(recorder);
    // Dropping the clients closes their connections; round trips in flight are abandoned.
    clients.abort_all();
    let _ = events.send(Event::Done {
        worker,
        result: Box::new(finished),
    });
}

/// Back-off between failed connection attempts, so a dead server is not hammered in a busy
/// loop: 1 ms, doubling to 100 ms; reset by a successful connect.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(100);

    async fn wait(&mut self) {
        sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// One virtual client: connect, do its round trips, close, and start again at once.
async fn virtual_client<C: Connection>(ctx: Rc<Ctx>, index: u32) {
    let config = Arc::clone(&ctx.config);
    let mut schedule = config
        .rate
        .map(|rate| Schedule::new(ctx.timing.start, rate, config.connections, index));
    let mut backoff = Backoff(Backoff::FIRST);
    loop {
        let Some(claim) = ctx.claim() else { return };
        let began = Instant::now();
        let connected = timeout(config.connect_timeout, C::connect(&ctx.target, &config))
            .await
            .unwrap_or(Err(Failure::ConnectTimeout));
        let connection = match connected {
            Ok(connection) => connection,
            Err(failure) => {
                ctx.recorder.borrow_mut().failed(&failure);
                ctx.unclaim(claim);
                backoff.wait().await;
                continue;
            }
        };
        ctx.recorder.borrow_mut().connected(began.elapsed());
        backoff.reset();
        let used = session(&ctx, connection, claim, schedule.as_mut()).await;
        ctx.unclaim(claim - used);
        if config.roundtrips == 0 && ctx.quota.get() == Some(0) {
            return;
        }
    }
}

/// Runs up to `claim` round trips on one connection, then closes it. Returns how many were
/// attempted.
async fn session<C: Connection>(
    ctx: &Ctx,
    mut connection: C,
    claim: u64,
    mut schedule: Option<&mut Schedule>,
) -> u64 {
    let config = &ctx.config;
    let mut used = 0;
    let mut healthy = true;
    let mut ready = Instant::now();
    while used < claim {
        if !ctx.take_ticket() {
            break;
        }
        // The connection's final round trip: its last claimed one with -r R, or with -r 0 the
        // one that took the run's final ticket.
        let last = if config.roundtrips > 0 {
            used + 1 == claim
        } else {
            ctx.quota.get() == Some(0)
        };
        let intended = match schedule.as_deref_mut() {
            Some(schedule) => {
                let due = schedule.next_send();
                if due > Instant::now() {
                    sleep_until(due).await;
                }
                Some(due)
            }
            None => None,
        };
        let id = ctx.next_id();
        ctx.recorder.borrow_mut().sending();
        let sent = Instant::now();
        let result = timeout(config.timeout, connection.round_trip(id, last)).await;
        let received = Instant::now();
        used += 1;
        let mut recorder = ctx.recorder.borrow_mut();
        recorder.settled();
        match result {
            Ok(Ok(transfer)) => {
                let corrected = intended
                    .map(|due| (schedule::corrected(due, ready, sent, received), ready > due));
                recorder.round_trip(received - sent, transfer.sent, transfer.received, corrected);
            }
            Ok(Err(failure)) => {
                recorder.failed(&failure);
                healthy &= failure.kind().keeps_connection();
            }
            Err(_) => {
                recorder.failed(&Failure::RoundTripTimeout);
                healthy = false;
            }
        }
        drop(recorder);
        ready = received;
        if !healthy || !connection.reusable() {
            break;
        }
    }
    if healthy {
        let _ = timeout(config.timeout, connection.close()).await;
    }
    ctx.recorder.borrow_mut().closed();
    used
}
