//! The broadcast relay every broadcast route shares (`/broadcast` on both WebSocket servers,
//! `tcp --broadcast`): a message from any subscriber goes to every subscriber, the sender
//! included, in the order the server received them.
//!
//! Each subscriber has a bounded queue ([`Broadcast::queue`] messages) that its own task
//! drains into its socket. A publish puts the message on every queue under one lock, so every
//! subscriber sees the same global order; it never waits for a socket. When a subscriber's
//! queue is full (it reads slower than messages arrive), the [`Policy`] decides: `drop` counts
//! the message as dropped for that subscriber and goes on, `disconnect` (the default) removes
//! it, and its task closes the connection (WebSocket close 1008).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

/// Default per-subscriber queue bound, in messages.
pub const DEFAULT_QUEUE: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(n) => n,
    None => unreachable!(),
};

/// What a subscriber whose queue is full gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// The message is dropped for that subscriber (counted); it stays connected.
    Drop,
    /// The subscriber is disconnected (WebSocket close 1008, TCP: the connection is closed).
    #[default]
    Disconnect,
}

impl Policy {
    /// The name the flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Drop => "drop",
            Policy::Disconnect => "disconnect",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Policy, String> {
        match text {
            "drop" => Ok(Policy::Drop),
            "disconnect" => Ok(Policy::Disconnect),
            other => Err(format!(
                "unknown broadcast policy `{other}`; expected drop or disconnect"
            )),
        }
    }
}

/// How the broadcast routes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast {
    /// What a subscriber with a full queue gets.
    pub policy: Policy,
    /// Messages each subscriber's queue holds.
    pub queue: NonZeroUsize,
    /// `tcp`: relay length-prefixed messages to every connection instead of echoing.
    pub tcp_relay: bool,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            policy: Policy::default(),
            queue: DEFAULT_QUEUE,
            tcp_relay: false,
        }
    }
}

/// What the relay has done, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages received from publishers.
    pub published: u64,
    /// Messages put on a subscriber's queue.
    pub queued: u64,
    /// Messages dropped for a subscriber with a full queue (`drop`).
    pub dropped: u64,
    /// Subscribers removed for a full queue (`disconnect`).
    pub disconnected: u64,
}

/// One relay: the subscribers of one route of one server.
#[derive(Debug)]
pub(crate) struct Hub<M> {
    policy: Policy,
    queue: NonZeroUsize,
    subscribers: Mutex<Subscribers<M>>,
    published: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    disconnected: AtomicU64,
}

#[derive(Debug)]
struct Subscribers<M> {
    next_id: u64,
    by_id: HashMap<u64, Subscriber<M>>,
}

#[derive(Debug)]
struct Subscriber<M> {
    queue: mpsc::Sender<M>,
    /// Cancelled when the policy disconnects it.
    kicked: CancellationToken,
}

/// A subscriber's end: its queue, and the token cancelled if it is disconnected. Dropping it
/// leaves the relay.
#[derive(Debug)]
pub(crate) struct Membership<'a, M> {
    hub: &'a Hub<M>,
    id: u64,
    /// Messages to send to this subscriber, in the relay's order.
    pub(crate) queue: mpsc::Receiver<M>,
    /// Cancelled when the policy disconnects this subscriber.
    pub(crate) kicked: CancellationToken,
}

impl<M> Drop for Membership<'_, M> {
    fn drop(&mut self) {
        self.hub.lock().by_id.remove(&self.id);
    }
}

impl<M> Hub<M> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers<M>> {
        // A panic while holding the lock cannot leave the map inconsistent (every change is
        // one insert or remove), so a poisoned lock is still usable.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<M: Clone> Hub<M> {
    /// An empty relay.
    pub(crate) fn new(settings: Broadcast) -> Hub<M> {
        Hub {
            policy: settings.policy,
            queue: settings.queue,
            subscribers: Mutex::new(Subscribers {
                next_id: 0,
                by_id: HashMap::new(),
            }),
            published: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
        }
    }

    /// Subscribes: messages published from now on are queued for the caller.
    pub(crate) fn join(&self) -> Membership<'_, M> {
        let (sender, receiver) = mpsc::channel(self.queue.get());
        let kicked = CancellationToken::new();
        let mut subscribers = self.lock();
        let id = subscribers.next_id;
        subscribers.next_id += 1;
        subscribers.by_id.insert(
            id,
            Subscriber {
                queue: sender,
                kicked: kicked.clone(),
            },
        );
        Membership {
            hub: self,
            id,
            queue: receiver,
            kicked,
        }
    }

    /// Queues `message` for every subscriber; full queues get the policy.
    pub(crate) fn publish(&self, message: &M) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let (mut queued, mut dropped) = (0, 0);
        let mut subscribers = self.lock();
        let mut slow = Vec::new();
        for (id, subscriber) in &subscribers.by_id {
            match subscriber.queue.try_send(message.clone()) {
                Ok(()) => queued += 1,
                Err(TrySendError::Full(_)) => match self.policy {
                    Policy::Drop => dropped += 1,
                    Policy::Disconnect => slow.push(*id),
                },
                // Its task has ended and is about to leave.
                Err(TrySendError::Closed(_)) => {}
            }
        }
        for id in &slow {
            if let Some(subscriber) = subscribers.by_id.remove(id) {
                subscriber.kicked.cancel();
            }
        }
        drop(subscribers);
        self.queued.fetch_add(queued, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.disconnected
            .fetch_add(slow.len() as u64, Ordering::Relaxed);
    }

    /// Subscribers now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Logs what the relay did, if anything (at server shutdown).
    pub(crate) fn log_counts(&self) {
        let c = self.counts();
        if c.published > 0 {
            tracing::info!(
                published = c.published,
                queued = c.queued,
                dropped = c.dropped,
                disconnected = c.disconnected,
                "broadcast relay"
            );
        }
    }

    /// What the relay has done so far.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            published: self.published.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(policy: Policy, queue: usize) -> Hub<u32> {
        Hub::new(Broadcast {
            policy,
            queue: NonZeroUsize::new(queue).unwrap(),
            tcp_relay: false,
        })
    }

    /// Every subscriber gets every message in publish order; one that leaves gets no more.
    #[test]
    fn every_subscriber_in_order() {
        let hub = hub(Policy::Disconnect, 8);
        let mut a = hub.join();
        let b = hub.join();
        for m in 0..5 {
            hub.publish(&m);
        }
        let got: Vec<u32> = std::iter::from_fn(|| a.queue.try_recv().ok()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        drop(b);
        assert_eq!(hub.len(), 1);
        hub.publish(&5);
        assert_eq!(
            hub.counts(),
            Counts {
                published: 6,
                queued: 11,
                dropped: 0,
                disconnected: 0
            }
        );
    }

    /// A full queue: `drop` skips the message for that subscriber only; `disconnect` removes
    /// it and cancels its token, once.
    #[test]
    fn full_queues_get_the_policy() {
        let dropping = hub(Policy::Drop, 2);
        let mut slow = dropping.join();
        let mut fast = dropping.join();
        for m in 0..4 {
            dropping.publish(&m);
            assert_eq!(fast.queue.try_recv().ok(), Some(m));
        }
        let got: Vec<u32> = std::iter::from_fn(|| slow.queue.try_recv().ok()).collect();
        assert_eq!(got, [0, 1]);
        assert_eq!(dropping.counts().dropped, 2);
        assert!(!slow.kicked.is_cancelled());

        let disconnecting = hub(Policy::Disconnect, 2);
        let slow = disconnecting.join();
        let mut fast = disconnecting.join();
        for m in 0..2 {
            disconnecting.publish(&m);
            assert_eq!(fast.queue.try_recv().ok(), Some(m));
        }
        assert!(!slow.kicked.is_cancelled());
        disconnecting.publish(&2);
        assert!(slow.kicked.is_cancelled());
        assert!(!fast.kicked.is_cancelled());
        assert_eq!(disconnecting.len(), 1);
        disconnecting.publish(&3);
        assert_eq!(disconnecting.counts().disconnected, 1);
        assert_eq!(fast.queue.try_recv().ok(), Some(2));
    }

    /// The policy's flag names, both ways; a bad one names itself.
    #[test]
    fn policy_names() {
        for policy in [Policy::Drop, Policy::Disconnect] {
            assert_eq!(policy.name().parse::<Policy>(), Ok(policy));
        }
        assert_eq!(
            "slow".parse::<Policy>(),
            Err("unknown broadcast policy `slow`; expected drop or disconnect".to_owned())
        );
    }
}
