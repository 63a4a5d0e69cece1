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

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use echobench_core::config::Config;
use echobench_core::error::ErrorLog;
use echobench_core::measurement::{Measurement, Second};
use echobench_core::monitor;
use echobench_core::stages::{self, Stage};

use crate::error::Failure;
use crate::pacer::Pacer;
use crate::protocol::Connection;
use crate::quota::{Claim, Quota};
use crate::recorder::{Paced, Recorder};
use crate::schedule::{self, ConnectPacer, Schedule};
use crate::target::Target;

/// When the phases of a run begin and end (shared by all workers).
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// Load starts (warmup begins); open-loop schedules count from here.
    pub start: Instant,
    /// When the measured window opened: the coordinator sets it once the warmup is over and
    /// every connection has opened (at `start` without a warmup). Every worker's seconds
    /// count from this one instant.
    pub window: watch::Receiver<Option<Instant>>,
    /// Length of the measured window.
    pub duration: Duration,
    /// Virtual clients (over all workers) that have connected at least once.
    pub opened: Arc<AtomicU32>,
}

/// One worker's share of the run.
#[derive(Debug, Clone)]
pub(crate) struct Share {
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
    Second { worker: usize, second: Box<Second> },
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
    /// Everything recorded in the measured window (its seconds went out as they ended), with
    /// the round trips in flight when it stopped and this thread's CPU time.
    pub measurement: Measurement,
    /// Stopped before the window opened: the errors of the warmup, which say why.
    pub warmup_errors: Option<ErrorLog>,
    /// When it stopped.
    pub stopped_at: Instant,
}

/// Starts a worker thread running connections of type `C`.
pub(crate) fn spawn<C: Connection + 'static>(
    share: Share,
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    stop: CancellationToken,
    events: UnboundedSender<Event>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("echo-worker-{}", share.id))
        .spawn(move || {
            let worker = share.id;
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
                supervise::<C>(share, config, target, timing, stop, events),
            );
        })
}

/// State shared by the virtual clients of one worker (single-threaded: `Cell`/`RefCell`).
struct Ctx {
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    recorder: RefCell<Recorder>,
    /// What this worker may still start (`-n` share, `-r` per connection).
    quota: RefCell<Quota>,
    /// `--connect-rate`: this worker's share of it.
    connects: Option<RefCell<ConnectPacer>>,
    /// `--rate`: releases each send at its intended instant.
    pacer: Option<Pacer>,
    /// The next message id.
    next_id: Cell<u64>,
    /// `--stages`, resolved from the starting level.
    stages: Option<Vec<Stage>>,
    /// When the measured window opened (the staged schedules count from it).
    window_start: Cell<Option<Instant>>,
    /// Connection stages: clients with an index at or above this sit idle, unconnected.
    active: Cell<u32>,
    /// Wakes idle clients when `active` rises.
    level_changed: Notify,
}

impl Ctx {
    /// Whether the stages set the number of connections (closed loop) rather than the rate.
    fn connection_stages(&self) -> Option<&[Stage]> {
        match (&self.stages, self.config.rate) {
            (Some(stages), None) => Some(stages),
            _ => None,
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
    share: Share,
    config: Arc<Config>,
    target: Arc<Target>,
    timing: Timing,
    stop: CancellationToken,
    events: UnboundedSender<Event>,
) {
    let worker = share.id;
    // This worker's share of --connect-rate: in proportion to its connections.
    let connects = config.connect_rate.map(|rate| {
        let share = rate * share.clients.len() as f64 / f64::from(config.peak_connections().max(1));
        RefCell::new(ConnectPacer::new(
            timing.start,
            share.max(f64::MIN_POSITIVE),
        ))
    });
    let pacer = match config
        .rate
        .map(|_| Pacer::new(share.clients.len()))
        .transpose()
    {
        Ok(pacer) => pacer,
        Err(err) => {
            let _ = events.send(Event::Failed {
                worker,
                reason: format!("cannot create the open-loop pacer's timer (timerfd): {err}"),
            });
            return;
        }
    };
    let ctx = Rc::new(Ctx {
        pacer,
        stages: config.resolved_stages(),
        window_start: Cell::new(None),
        active: Cell::new(config.connections),
        level_changed: Notify::new(),
        recorder: RefCell::new(Recorder::new(config.rate.is_some())),
        quota: RefCell::new(Quota::new(config.roundtrips, share.quota)),
        connects,
        next_id: Cell::new((worker as u64) << 48),
        config,
        target,
        timing,
    });
    let mut clients = JoinSet::new();
    for (slot, &index) in share.clients.iter().enumerate() {
        clients.spawn_local(virtual_client::<C>(Rc::clone(&ctx), index, slot));
    }
    let pacer = ctx.pacer.is_some().then(|| {
        let ctx = Rc::clone(&ctx);
        tokio::task::spawn_local(async move {
            if let Some(pacer) = &ctx.pacer
                && let Err(err) = pacer.drive().await
            {
                tracing::error!(%err, "the open-loop pacer's timer failed");
            }
        })
    });

    let one_second = Duration::from_secs(1);
    let mut window = ctx.timing.window.clone();
    let far = timing_far(ctx.timing.start);
    let mut measuring = false;
    let mut cpu_start = monitor::thread_cpu();
    let mut spin_start = Duration::ZERO;
    let mut second_start = far;
    let mut next_tick = far;
    let mut deadline = far;
    let mut index: u32 = 0;
    // --stages: where each stage ends, the stage in progress, and (connection stages) when
    // the level is next recomputed.
    let stage_count = ctx.stages.as_ref().map_or(0, Vec::len) as u32;
    let mut stage_index: u32 = 0;
    let mut stage_start = far;
    let mut stage_end = far;
    let mut next_level = far;
    let level_step = Duration::from_millis(10);
    let reason = loop {
        if !measuring && let Some(opened) = *window.borrow_and_update() {
            // The warmup is over: forget it and start the clock.
            ctx.recorder.borrow_mut().reset();
            cpu_start = monitor::thread_cpu();
            spin_start = ctx.pacer.as_ref().map_or(Duration::ZERO, Pacer::idle_spin);
            measuring = true;
            second_start = opened;
            next_tick = opened + one_second;
            deadline = opened + ctx.timing.duration;
            ctx.window_start.set(Some(opened));
            if let Some(stages) = &ctx.stages
                && let Some(first) = stages.first()
            {
                ctx.recorder.borrow_mut().begin_stages();
                stage_start = opened;
                stage_end = opened + first.duration;
                if ctx.connection_stages().is_some() {
                    next_level = opened;
                }
            }
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break Stop::Interrupted,
            () = sleep_until(deadline), if measuring => break Stop::Deadline,
            () = sleep_until(next_tick), if measuring => {
                let second = ctx.recorder.borrow_mut().take_second(index, one_second);
                let _ = events.send(Event::Second { worker, second: Box::new(second) });
                index += 1;
                second_start = next_tick;
                next_tick += one_second;
            }
            () = sleep_until(stage_end), if measuring && stage_index < stage_count => {
                let more = stage_index + 1 < stage_count;
                ctx.recorder.borrow_mut().end_stage(stage_index, stage_end - stage_start, more);
                stage_index += 1;
                stage_start = stage_end;
                stage_end = match ctx.stages.as_ref().and_then(|s| s.get(stage_index as usize)) {
                    Some(stage) => stage_start + stage.duration,
                    None => far,
                };
            }
            () = sleep_until(next_level), if measuring && next_level < far => {
                let window_start = ctx.window_start.get().unwrap_or(next_level);
                if let Some(stages) = ctx.connection_stages() {
                    let level = stages::level_at(stages, Instant::now().saturating_duration_since(window_start));
                    let level = level.round().clamp(0.0, f64::from(u32::MAX)) as u32;
                    if level != ctx.active.get() {
                        let rising = level > ctx.active.get();
                        ctx.active.set(level);
                        if rising {
                            ctx.level_changed.notify_waiters();
                        }
                    }
                }
                next_level += level_step;
            }
            changed = window.changed(), if !measuring => {
                if changed.is_err() {
                    // The coordinator is gone: nothing will read what follows.
                    break Stop::Interrupted;
                }
            }
            joined = clients.join_next() => match joined {
                None => break Stop::QuotaDone,
                Some(Err(err)) if err.is_panic() => tracing::error!(worker, "a virtual client panicked"),
                Some(_) => {}
            },
        }
    };

    // Freeze the numbers before anything else can run on this thread.
    let stopped_at = Instant::now().min(deadline);
    let mut recorder = ctx.recorder.borrow_mut();
    let warmup_errors = (!measuring).then(|| recorder.totals().errors.clone());
    if !measuring {
        // Stopped during the warmup: nothing was measured.
        recorder.reset();
    }
    let in_flight = match reason {
        Stop::QuotaDone => 0,
        Stop::Deadline | Stop::Interrupted => recorder.in_flight(),
    };
    if measuring && stage_index < stage_count {
        // The stage in progress when the run stopped (cut short unless at the deadline).
        recorder.end_stage(
            stage_index,
            stopped_at.saturating_duration_since(stage_start),
            false,
        );
    }
    let tail = stopped_at.saturating_duration_since(second_start);
    let last = recorder.take_second(index, tail);
    if measuring && (!tail.is_zero() || last.round_trips + last.errors > 0) {
        let _ = events.send(Event::Second {
            worker,
            second: Box::new(last),
        });
    }
    let thread_cpu = monitor::thread_cpu().saturating_sub(cpu_start);
    let idle_spin = ctx
        .pacer
        .as_ref()
        .map_or(Duration::ZERO, |p| p.idle_spin().saturating_sub(spin_start));
    let mut measurement = recorder.totals().clone();
    measurement.stages = recorder.stages().to_vec();
    measurement.counts.in_flight_at_deadline = in_flight;
    measurement.cpu.threads = 1;
    measurement.cpu.process = thread_cpu;
    measurement.cpu.busiest_thread = thread_cpu.saturating_sub(idle_spin);
    measurement.cpu.idle_spin = idle_spin;
    drop(recorder);
    // Dropping the clients closes their connections; round trips in flight are abandoned.
    clients.abort_all();
    if let Some(pacer) = pacer {
        pacer.abort();
    }
    let _ = events.send(Event::Done {
        worker,
        result: Box::new(Finished {
            measurement,
            warmup_errors,
            stopped_at,
        }),
    });
}

/// An instant no run reaches, for the deadlines of a window not yet open.
fn timing_far(start: Instant) -> Instant {
    start + Duration::from_secs(86_400 * 365)
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

/// One virtual client: connect, do its round trips, close, and start again at once, until the
/// quota (if any) is used up.
/// `slot` is its index within the worker.
async fn virtual_client<C: Connection>(ctx: Rc<Ctx>, index: u32, slot: usize) {
    let config = Arc::clone(&ctx.config);
    let mut schedule = config
        .rate
        .map(|rate| Schedule::new(ctx.timing.start, rate, config.connections, index));
    let mut backoff = Backoff(Backoff::FIRST);
    let mut opened_once = false;
    loop {
        // Connection stages: below the level this client is not wanted; wait, unconnected.
        while index >= ctx.active.get() {
            ctx.level_changed.notified().await;
        }
        let Some(claim) = ctx.quota.borrow_mut().connect() else {
            return;
        };
        if let Some(pacer) = &ctx.connects {
            let slot = pacer.borrow_mut().slot(Instant::now());
            sleep_until(slot).await;
        }
        let began = Instant::now();
        // Boxed: the handshake's state (the largest of the client's futures) then lives on the
        // heap only while a connect is in progress, not in every idle client's task.
        let connected = timeout(
            config.connect_timeout,
            Box::pin(C::connect(&ctx.target, &config)),
        )
        .await
        .unwrap_or(Err(Failure::ConnectTimeout));
        let connection = match connected {
            Ok(connection) => connection,
            Err(failure) => {
                ctx.recorder.borrow_mut().failed(&failure);
                ctx.quota.borrow_mut().release(claim);
                backoff.wait().await;
                continue;
            }
        };
        ctx.recorder.borrow_mut().connected(began.elapsed());
        if !opened_once {
            opened_once = true;
            ctx.timing.opened.fetch_add(1, Ordering::Relaxed);
            if let Some(schedule) = &mut schedule {
                schedule.skip_to(Instant::now());
            }
        }
        backoff.reset();
        let claim = session(&ctx, connection, claim, schedule.as_mut(), slot, index).await;
        ctx.quota.borrow_mut().release(claim);
    }
}

/// `--pipeline K`: one batch of up to K messages (fewer if the claim runs out first; `last`
/// says whether the turn already taken is the connection's last), each recorded with its
/// latency from the batch's send. Returns whether the connection is still healthy.
async fn pipelined<C: Connection>(
    ctx: &Ctx,
    connection: &mut C,
    claim: &mut Claim,
    mut last: bool,
    received: &mut Vec<Instant>,
) -> bool {
    let mut count = 1;
    while count < ctx.config.pipeline && !last {
        match ctx.quota.borrow_mut().turn(claim) {
            Some(turn) => {
                count += 1;
                last = turn.last;
            }
            None => break,
        }
    }
    let first = ctx.next_id();
    for _ in 1..count {
        ctx.next_id();
    }
    {
        let mut recorder = ctx.recorder.borrow_mut();
        for _ in 0..count {
            recorder.sending();
        }
    }
    received.clear();
    let sent = Instant::now();
    let result = timeout(
        ctx.config.timeout,
        connection.round_trips(first, count, last, received),
    )
    .await;
    let mut recorder = ctx.recorder.borrow_mut();
    for _ in 0..count {
        recorder.settled();
    }
    // Bytes are counted once per batch, with its first echo.
    let (mut bytes_sent, mut bytes_received) = match &result {
        Ok(Ok(transfer)) => (transfer.sent, transfer.received),
        _ => (0, 0),
    };
    for at in received.iter() {
        recorder.round_trip(*at - sent, bytes_sent, bytes_received, None);
        (bytes_sent, bytes_received) = (0, 0);
    }
    let failure = match result {
        Ok(Ok(_)) => return true,
        Ok(Err(failure)) => failure,
        Err(_) => Failure::RoundTripTimeout,
    };
    // The failed message counts once; those after it in the batch were never answered and
    // go back to the quota (they are neither completed nor errors). Their echoes may still be
    // on the way, so the connection cannot be followed any more: it is replaced.
    recorder.failed(&failure);
    let unanswered = count.saturating_sub(received.len() + 1) as u64;
    drop(recorder);
    ctx.quota.borrow_mut().give_back(claim, unanswered);
    failure.kind().keeps_connection() && unanswered == 0
}

/// Runs the round trips `claim` allows on one connection, then closes it. Returns what is
/// left of the claim.
async fn session<C: Connection>(
    ctx: &Ctx,
    mut connection: C,
    mut claim: Claim,
    mut schedule: Option<&mut Schedule>,
    slot: usize,
    index: u32,
) -> Claim {
    let config = &ctx.config;
    let mut healthy = true;
    let mut ready = Instant::now();
    let mut batch = Vec::new();
    loop {
        if index >= ctx.active.get() {
            // The connection stages went below this client: close, and wait to be wanted.
            break;
        }
        let Some(turn) = ctx.quota.borrow_mut().turn(&mut claim) else {
            break;
        };
        if config.pipeline > 1 {
            // Closed loop only (the config says so): a batch of up to K, then on.
            // Boxed, like the connect: its state is only needed while a batch is in flight.
            healthy = Box::pin(pipelined(
                ctx,
                &mut connection,
                &mut claim,
                turn.last,
                &mut batch,
            ))
            .await;
            if !healthy || !connection.reusable() {
                break;
            }
            continue;
        }
        let intended = match schedule.as_deref_mut() {
            Some(schedule) => {
                let due = match &ctx.stages {
                    Some(stages) => match schedule.next_send_staged(ctx.window_start.get(), stages)
                    {
                        Some(due) => due,
                        // The rate stages offer this connection nothing more: idle until the end.
                        None => std::future::pending().await,
                    },
                    None => schedule.next_send(),
                };
                if let Some(pacer) = &ctx.pacer {
                    pacer.until(slot, due).await;
                }
                Some(due)
            }
            None => None,
        };
        let id = ctx.next_id();
        ctx.recorder.borrow_mut().sending();
        let sent = Instant::now();
        let result = timeout(config.timeout, connection.round_trip(id, turn.last)).await;
        let received = Instant::now();
        let mut recorder = ctx.recorder.borrow_mut();
        recorder.settled();
        match result {
            Ok(Ok(transfer)) => {
                let paced = intended.map(|due| Paced {
                    corrected: schedule::corrected(due, ready, sent, received),
                    held: ready > due,
                    lag: sent.saturating_duration_since(due.max(ready)),
                });
                recorder.round_trip(received - sent, transfer.sent, transfer.received, paced);
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
        let _ = timeout(config.timeout, Box::pin(connection.close())).await;
    }
    ctx.recorder.borrow_mut().closed();
    claim
}
