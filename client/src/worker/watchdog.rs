//! Timeouts for a worker's virtual clients without a timer per round trip.
//!
//! `tokio::time::timeout` registers an entry in the runtime's timer wheel when first polled
//! and removes it when dropped: two visits to the wheel for every round trip, though almost
//! none ever expires. perf put that (`Sleep::poll`, `TimerEntry` drop, the driver's
//! `process_at_time`) at 2.0% of echo-client's samples in a closed-loop run against `hyper`
//! (2026-12-04). Here each virtual client has a slot holding the deadline of what it is
//! waiting for; one sweep per worker, every [`Watchdog::period`], expires the slots whose
//! deadline has passed and wakes their tasks. Arming a slot is a store, disarming another; a
//! wait therefore ends between its deadline and one period after it (a tenth of the
//! timeout, 1 to 100 ms). wrk sweeps its timeouts the same way, every 2 s.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

/// One worker's timeouts, shared by its virtual clients (`Rc`); [`Watchdog::sweep`] must run
/// as a task on the same event loop.
pub(crate) struct Watchdog {
    slots: RefCell<Vec<Slot>>,
    /// How often the sweep looks: the most a wait can overrun its deadline.
    period: Duration,
}

#[derive(Default)]
struct Slot {
    /// The deadline of the wait in progress.
    deadline: Option<Instant>,
    /// The sweep found the deadline passed; the wait ends with [`Elapsed`] when next polled.
    expired: bool,
    waker: Option<Waker>,
}

/// A wait outlived its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

impl Watchdog {
    /// The finest sweep: below this the sweep's own wake-ups would cost more than the timers
    /// it replaces.
    const FINEST: Duration = Duration::from_millis(1);
    /// The coarsest sweep: a wait ends at most this long after its deadline.
    const COARSEST: Duration = Duration::from_millis(100);

    /// A watchdog for `clients` virtual clients whose shortest timeout is `shortest`: it
    /// sweeps ten times per that timeout, within [`Self::FINEST`] and [`Self::COARSEST`].
    pub(crate) fn new(clients: usize, shortest: Duration) -> Watchdog {
        Watchdog {
            slots: RefCell::new((0..clients).map(|_| Slot::default()).collect()),
            period: (shortest / 10).clamp(Self::FINEST, Self::COARSEST),
        }
    }

    /// `future`, ended with [`Elapsed`] if it has not completed by `deadline` (give or take one
    /// period). `slot` is the virtual client's index within the worker; one client waits for
    /// one thing at a time.
    pub(crate) fn guard<F: Future>(
        &self,
        slot: usize,
        deadline: Instant,
        future: F,
    ) -> Guarded<'_, F> {
        if let Some(state) = self.slots.borrow_mut().get_mut(slot) {
            state.deadline = Some(deadline);
            state.expired = false;
        }
        Guarded {
            watchdog: self,
            slot,
            future,
        }
    }

    /// Expires every wait whose deadline has passed, once per period, for as long as the
    /// worker runs.
    pub(crate) async fn sweep(&self) {
        let mut next = Instant::now() + self.period;
        loop {
            sleep_until(next).await;
            let now = Instant::now();
            self.expire(now);
            // A stalled event loop skips the sweeps it missed rather than running them back to
            // back.
            next = (next + self.period).max(now);
        }
    }

    /// Marks the waits whose deadline is at or before `now` expired, and wakes them.
    fn expire(&self, now: Instant) {
        let mut wake = Vec::new();
        for slot in self.slots.borrow_mut().iter_mut() {
            if let Some(deadline) = slot.deadline
                && deadline <= now
                && !slot.expired
            {
                slot.expired = true;
                if let Some(waker) = slot.waker.take() {
                    wake.push(waker);
                }
            }
        }
        // Woken after the borrow ends: a waker may run code that arms a slot.
        for waker in wake {
            waker.wake();
        }
    }

    fn disarm(&self, slot: usize) {
        if let Some(state) = self.slots.borrow_mut().get_mut(slot) {
            state.deadline = None;
            state.expired = false;
        }
    }
}

pin_project_lite::pin_project! {
    /// A future under a [`Watchdog`] deadline; see [`Watchdog::guard`].
    pub(crate) struct Guarded<'a, F> {
        watchdog: &'a Watchdog,
        slot: usize,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for Guarded<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.watchdog.disarm(*this.slot);
        }
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (watchdog, slot) = (*this.watchdog, *this.slot);
        if let Some(state) = watchdog.slots.borrow().get(slot)
            && state.expired
        {
            return Poll::Ready(Err(Elapsed));
        }
        match this.future.poll(cx) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending => {
                if let Some(state) = watchdog.slots.borrow_mut().get_mut(slot) {
                    // The same task polls a slot's waits: its waker is cloned once, not on
                    // every poll.
                    match &state.waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => state.waker = Some(cx.waker().clone()),
                    }
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    /// Runs `test` on a current-thread runtime with the clock paused (it advances only when
    /// every task waits on a timer), with the watchdog's sweep beside it.
    fn with_sweep<T>(
        clients: usize,
        shortest: Duration,
        test: impl AsyncFnOnce(Rc<Watchdog>) -> T,
    ) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let watchdog = Rc::new(Watchdog::new(clients, shortest));
            let sweeper = Rc::clone(&watchdog);
            let sweep = tokio::task::spawn_local(async move { sweeper.sweep().await });
            // A broken watchdog fails the test instead of hanging it: the paused clock runs
            // to this limit at once.
            let output = tokio::time::timeout(Duration::from_secs(60), test(watchdog))
                .await
                .expect("every wait ended within a minute of virtual time");
            sweep.abort();
            output
        })
    }

    #[test]
    fn the_period_is_a_tenth_of_the_shortest_timeout_within_bounds() {
        for (shortest, period) in [
            (Duration::from_secs(10), Duration::from_millis(100)),
            (Duration::from_millis(500), Duration::from_millis(50)),
            (Duration::from_millis(5), Duration::from_millis(1)),
            (Duration::ZERO, Duration::from_millis(1)),
        ] {
            assert_eq!(Watchdog::new(1, shortest).period, period, "{shortest:?}");
        }
    }

    #[test]
    fn a_wait_that_never_ends_expires_within_one_period_of_its_deadline() {
        let (waited, outcome) = with_sweep(4, Duration::from_millis(100), async |watchdog| {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(95);
            let outcome = watchdog
                .guard(2, deadline, std::future::pending::<()>())
                .await;
            (start.elapsed(), outcome)
        });
        assert_eq!(outcome, Err(Elapsed));
        // Sweeps at 10, 20, ... ms: the first at or after 95 ms is at 100 ms.
        assert_eq!(waited, Duration::from_millis(100));
    }

    #[test]
    fn a_wait_that_ends_in_time_returns_its_output_and_frees_the_slot() {
        let outcomes = with_sweep(1, Duration::from_millis(100), async |watchdog| {
            let start = Instant::now();
            let quick = watchdog
                .guard(0, start + Duration::from_millis(30), async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    7
                })
                .await;
            // The slot's old deadline (30 ms) passes while nothing waits: the next wait on the
            // slot, with its own deadline, is not cut short by it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let next = watchdog
                .guard(0, Instant::now() + Duration::from_millis(40), async {
                    tokio::time::sleep(Duration::from_millis(35)).await;
                    8
                })
                .await;
            (quick, next, start.elapsed())
        });
        assert_eq!(outcomes, (Ok(7), Ok(8), Duration::from_millis(105)));
    }

    #[test]
    fn a_dropped_wait_does_not_expire_the_next_one_on_its_slot() {
        let outcome = with_sweep(1, Duration::from_millis(100), async |watchdog| {
            let start = Instant::now();
            {
                // Expired by the sweep at 10 ms, and dropped before it is polled again.
                let abandoned = watchdog.guard(0, start, std::future::pending::<()>());
                tokio::time::sleep(Duration::from_millis(15)).await;
                drop(abandoned);
            }
            watchdog
                .guard(0, Instant::now() + Duration::from_secs(1), async { "echo" })
                .await
        });
        assert_eq!(outcome, Ok("echo"));
    }

    #[test]
    fn only_the_slots_past_their_deadline_expire() {
        let outcomes = with_sweep(3, Duration::from_millis(100), async |watchdog| {
            let start = Instant::now();
            let never = |slot, after| {
                watchdog.guard(
                    slot,
                    start + Duration::from_millis(after),
                    std::future::pending::<()>(),
                )
            };
            let late = watchdog.guard(1, start + Duration::from_millis(25), async {
                tokio::time::sleep(Duration::from_millis(40)).await;
            });
            let (a, b, c) = tokio::join!(
                async {
                    let outcome = never(0, 20).await;
                    (outcome, start.elapsed())
                },
                async {
                    let outcome = late.await;
                    (outcome, start.elapsed())
                },
                async {
                    let outcome = never(2, 60).await;
                    (outcome, start.elapsed())
                },
            );
            [a, b, c]
        });
        assert_eq!(
            outcomes,
            [
                (Err(Elapsed), Duration::from_millis(20)),
                (Err(Elapsed), Duration::from_millis(30)),
                (Err(Elapsed), Duration::from_millis(60)),
            ]
        );
    }
}
