//! One virtual client: connect (paced, with back-off), do the round trips its claim allows —
//! one at a time, on its open-loop schedule, or in pipelined batches — close, and start again;
//! and, with connection stages, wait unconnected while the level is below it.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use super::Ctx;
use crate::error::Failure;
use crate::protocol::Connection;
use crate::quota::Claim;
use crate::recorder::Paced;
use crate::schedule::{self, Schedule};

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
pub(super) async fn virtual_client<C: Connection>(ctx: Rc<Ctx>, index: u32, slot: usize) {
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
        let connected = ctx
            .watchdog
            .guard(
                slot,
                began + config.connect_timeout,
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
        ctx.recorder
            .borrow_mut()
            .connected(began.elapsed(), &connection.opened());
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
    slot: usize,
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
    let result = ctx
        .watchdog
        .guard(
            slot,
            sent + ctx.config.timeout,
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
                slot,
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
        let result = ctx
            .watchdog
            .guard(
                slot,
                sent + config.timeout,
                connection.round_trip(id, turn.last),
            )
            .await;
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
        let _ = ctx
            .watchdog
            .guard(
                slot,
                Instant::now() + config.timeout,
                Box::pin(connection.close()),
            )
            .await;
    }
    ctx.recorder.borrow_mut().closed();
    claim
}
