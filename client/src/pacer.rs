//! The open-loop pacer: releases each connection's send at its intended instant, to within
//! microseconds, on a worker's event loop.
//!
//! tokio's timer wheel has a resolution of one millisecond: a `sleep_until` wakes up to 1 ms
//! after its deadline. At 60,000 sends/s over 64 connections a connection is due every
//! 1.07 ms, so sends waited on the wheel left up to a whole period late, which then held the
//! next send back and was charged to the server. Here every worker has one `timerfd`
//! (`CLOCK_MONOTONIC`, absolute, no timer slack) armed for the earliest send due; the event
//! loop wakes when it expires, and every send that is due by then is released in schedule
//! order in the same tick. Waiting connections sit in a binary heap, one entry per waiting
//! connection, so a wait costs a heap push and, only when it is the new earliest, one
//! `timerfd_settime`.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{ClockId as Clock, clock_gettime};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// One worker's pacer, shared by its virtual clients (`Rc`); [`Pacer::drive`] must run as a
/// task on the same event loop.
pub(crate) struct Pacer {
    timer: AsyncFd<Timer>,
    /// How close a send must be for the driver to busy-wait for it (yielding to the event
    /// loop, which keeps handling echoes) instead of parking on the timer, which is armed this
    /// much early (`--pacer-spin`). A parked event loop wakes 10-20 µs after the timer expires
    /// on a quiet VM of this type, and each park costs a `timerfd_settime` (a hypervisor exit
    /// to reprogram the local timer) and a context switch; below this gap the spin is both
    /// cheaper and exact. On a busy host a halted vCPU wakes 100 µs or more late (2-16% of
    /// sends at 2,500-5,000/s in one run of 2026-12-03), which only a longer spin avoids.
    spin: Duration,
    /// `Instant` and `CLOCK_MONOTONIC` read together: `Instant` is `CLOCK_MONOTONIC` on
    /// Linux, but its value is opaque, so a due instant is converted through this pair.
    epoch: (Instant, Duration),
    state: RefCell<State>,
    /// Bumped whenever a client asks for its next send: a spin turn in which it did not move
    /// found nothing else to do on the event loop.
    activity: Cell<u64>,
    /// Time spent busy-waiting with nothing else to do: CPU the pacer held but the load did
    /// not need, so it is reported apart and not counted as the client's load.
    idle_spin: Cell<Duration>,
}

/// The `timerfd`, owned: the fd stays open and the same for as long as this value lives,
/// which is what registering it with the event loop requires.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[derive(Default)]
struct State {
    /// Waiting sends, earliest first.
    queue: BinaryHeap<Reverse<Entry>>,
    /// One per virtual client of the worker.
    slots: Vec<Slot>,
    /// The send the timer is armed for, while the driver is parked.
    armed: Option<Instant>,
    /// The driver is busy-waiting for a send due within [`Pacer::spin`]: it looks at every turn of
    /// the event loop, so a new wait need not arm the timer.
    spinning: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due: Instant,
    slot: usize,
    /// The slot's wait this entry belongs to; a wait that was dropped leaves a stale entry.
    wait: u64,
}

#[derive(Default)]
struct Slot {
    /// The wait in progress (counts up), and whether it has been released.
    wait: u64,
    waiting: bool,
    released: bool,
    waker: Option<Waker>,
}

impl Pacer {
    /// A pacer for `clients` virtual clients that spins for sends due within `spin`. Needs a
    /// tokio runtime with I/O enabled.
    pub(crate) fn new(clients: usize, spin: Duration) -> io::Result<Pacer> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let now = Instant::now();
        let mono = Duration::from(clock_gettime(Clock::CLOCK_MONOTONIC)?);
        let state = State {
            slots: (0..clients).map(|_| Slot::default()).collect(),
            ..State::default()
        };
        #[allow(unsafe_code)]
        // SAFETY: `Timer` owns the descriptor, which stays open and unchanged until the
        // `AsyncFd` (its only owner) drops it.
        let timer = unsafe { AsyncFd::register_with_interest(Timer(timer), Interest::READABLE) }?;
        Ok(Pacer {
            timer,
            spin,
            epoch: (now, mono),
            state: RefCell::new(state),
            activity: Cell::new(0),
            idle_spin: Cell::new(Duration::ZERO),
        })
    }

    /// Completes at `due` (at once if it has passed). `slot` is the virtual client's index
    /// within the worker; one client waits for one send at a time.
    pub(crate) fn until(&self, slot: usize, due: Instant) -> Until<'_> {
        Until {
            pacer: self,
            slot,
            due,
            wait: None,
        }
    }

    /// Releases the sends as they fall due, for as long as the worker runs. Returns only if
    /// the timer fails, which it does not once created.
    pub(crate) async fn drive(&self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            match self.release(now) {
                Some(next) if next.saturating_duration_since(now) <= self.spin => {
                    self.state.borrow_mut().spinning = true;
                    let activity = self.activity.get();
                    tokio::task::yield_now().await;
                    if self.activity.get() == activity {
                        self.idle_spin.set(self.idle_spin.get() + now.elapsed());
                    }
                }
                next => {
                    {
                        let mut state = self.state.borrow_mut();
                        state.spinning = false;
                        state.armed = None;
                    }
                    if let Some(next) = next {
                        self.arm(next)?;
                    }
                    let mut ready = self.timer.readable().await?;
                    // Non-blocking read of the expiration count; EAGAIN is a spurious wake.
                    let _ = ready.get_inner().0.wait();
                    ready.clear_ready();
                }
            }
        }
    }

    /// Busy-waiting time with nothing else to do so far (see [`Pacer::spin`]).
    pub(crate) fn idle_spin(&self) -> Duration {
        self.idle_spin.get()
    }

    /// Releases every send due by `now`, in schedule order; returns when the next is due.
    fn release(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.borrow_mut();
        while let Some(&Reverse(entry)) = state.queue.peek() {
            if entry.due > now {
                return Some(entry.due);
            }
            state.queue.pop();
            let slot = &mut state.slots[entry.slot];
            if slot.waiting && slot.wait == entry.wait {
                slot.released = true;
                if let Some(waker) = slot.waker.take() {
                    waker.wake();
                }
            }
        }
        None
    }

    /// Arms the timer to wake the driver [`Pacer::spin`] before `due`, absolute on
    /// `CLOCK_MONOTONIC`; a time already past fires at once.
    fn arm(&self, due: Instant) -> io::Result<()> {
        let (epoch, mono) = self.epoch;
        let due_at = due;
        let due = due.checked_sub(self.spin).unwrap_or(due);
        let at = if due >= epoch {
            mono + (due - epoch)
        } else {
            mono.saturating_sub(epoch - due)
        };
        // A zero expiration would disarm the timer instead of firing it.
        let at = at.max(Duration::from_nanos(1));
        self.timer.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(at)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.state.borrow_mut().armed = Some(due_at);
        Ok(())
    }
}

/// The future of [`Pacer::until`].
pub(crate) struct Until<'a> {
    pacer: &'a Pacer,
    slot: usize,
    due: Instant,
    /// The wait number once queued.
    wait: Option<u64>,
}

impl Future for Until<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let pacer = self.pacer;
        let mut state = pacer.state.borrow_mut();
        let slot = &mut state.slots[self.slot];
        match self.wait {
            Some(_) if slot.released => {
                slot.released = false;
                slot.waiting = false;
                self.wait = None;
                Poll::Ready(())
            }
            Some(_) => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            None => {
                pacer.activity.set(pacer.activity.get().wrapping_add(1));
                if Instant::now() >= self.due {
                    return Poll::Ready(());
                }
                slot.wait += 1;
                slot.waiting = true;
                slot.released = false;
                slot.waker = Some(cx.waker().clone());
                let entry = Entry {
                    due: self.due,
                    slot: self.slot,
                    wait: slot.wait,
                };
                self.wait = Some(entry.wait);
                state.queue.push(Reverse(entry));
                let earliest = !state.spinning && state.armed.is_none_or(|armed| self.due < armed);
                drop(state);
                if earliest && let Err(err) = pacer.arm(self.due) {
                    // Cannot happen with a valid timerfd; fall back to releasing at once
                    // rather than never.
                    tracing::warn!(%err, "cannot arm the pacer's timer");
                    return Poll::Ready(());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Until<'_> {
    fn drop(&mut self) {
        if self.wait.is_some()
            && let Ok(mut state) = self.pacer.state.try_borrow_mut()
        {
            let slot = &mut state.slots[self.slot];
            slot.waiting = false;
            slot.released = false;
            slot.waker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Three clients due in scrambled order are released in schedule order, none before its
    /// instant; a wait already due completes at once.
    #[test]
    fn releases_in_schedule_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let order = local.block_on(&runtime, async {
            let pacer = Rc::new(Pacer::new(4, echobench_core::config::DEFAULT_PACER_SPIN).unwrap());
            let driver = tokio::task::spawn_local({
                let pacer = Rc::clone(&pacer);
                async move { pacer.drive().await }
            });
            let origin = Instant::now();
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (slot, after_ms) in [(0, 30u64), (1, 10), (2, 20)] {
                let (pacer, order) = (Rc::clone(&pacer), Rc::clone(&order));
                tasks.push(tokio::task::spawn_local(async move {
                    let due = origin + Duration::from_millis(after_ms);
                    pacer.until(slot, due).await;
                    assert!(Instant::now() >= due, "slot {slot} released early");
                    order.borrow_mut().push(slot);
                }));
            }
            pacer.until(3, origin).await;
            order.borrow_mut().push(3);
            for task in tasks {
                task.await.unwrap();
            }
            driver.abort();
            order.take()
        });
        assert_eq!(order, [3, 1, 2, 0]);
    }

    /// A wait dropped before its instant (its connection closed) leaves nothing behind: the
    /// slot's next wait is not released by the stale entry.
    #[test]
    fn dropped_wait_is_forgotten() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let pacer = Rc::new(Pacer::new(1, echobench_core::config::DEFAULT_PACER_SPIN).unwrap());
            let driver = tokio::task::spawn_local({
                let pacer = Rc::clone(&pacer);
                async move { pacer.drive().await }
            });
            let origin = Instant::now();
            let early = origin + Duration::from_millis(5);
            let late = origin + Duration::from_millis(40);
            {
                let mut abandoned = std::pin::pin!(pacer.until(0, early));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(abandoned.as_mut().poll(&mut cx).is_pending());
            }
            pacer.until(0, late).await;
            assert!(
                Instant::now() >= late,
                "released by the dropped wait's entry"
            );
            driver.abort();
        });
    }
}
