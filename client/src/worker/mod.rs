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

use std::sync::atomic::AtomicU32;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use echobench_core::config::Config;
use echobench_core::error::ErrorLog;
use echobench_core::measurement::{Measurement, Second};
use echobench_core::monitor;
use echobench_core::stages::{self, Stage};

mod client;
mod watchdog;

use client::virtual_client;
use watchdog::Watchdog;

use crate::pacer::Pacer;
use crate::protocol::Connection;
use crate::quota::Quota;
use crate::recorder::Recorder;
use crate::schedule::ConnectPacer;
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
            // The supervisor runs as a task of its own: the future `block_on` drives is polled
            // again whenever any of the worker's tasks is woken, and the supervisor's select
            // (a cancellation token, four sleeps, the join set) cost 0.5% of the client's
            // samples there (perf, closed loop against hyper, 2026-12-04). A join handle is
            // one check.
            local.block_on(&runtime, async move {
                let supervisor = tokio::task::spawn_local(supervise::<C>(
                    share, config, target, timing, stop, events,
                ));
                if let Err(err) = supervisor.await
                    && err.is_panic()
                {
                    std::panic::resume_unwind(err.into_panic());
                }
            });
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
    /// Ends the waits (connect, round trip, close) that outlive their timeout.
    watchdog: Watchdog,
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
        .map(|_| Pacer::new(share.clients.len(), config.pacer_spin))
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
    let watchdog = Watchdog::new(
        share.clients.len(),
        config.timeout.min(config.connect_timeout),
    );
    let ctx = Rc::new(Ctx {
        pacer,
        watchdog,
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
    let sweep = {
        let ctx = Rc::clone(&ctx);
        tokio::task::spawn_local(async move { ctx.watchdog.sweep().await })
    };
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
    sweep.abort();
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
