//! What each receiver makes of the messages it gets, and when each message has reached every
//! receiver. A relay promises every message to every subscriber in one order, so each receiver
//! expects each publisher's sequence numbers one after another; anything else is counted as
//! exactly one of: a gap (the skipped ones are missing until they turn up), a late arrival
//! that fills a gap (out of order), or a repeat (duplicated).

use std::collections::{BTreeSet, HashMap};

/// Messages whose last receiver is awaited, at most: past it new messages are not followed
/// (their deliveries still count; only their slowest-receiver latency is not known), so a relay
/// that never delivers cannot make the client's memory grow with the run.
pub const MAX_PENDING: usize = 1 << 20;

/// Gaps remembered per receiver and publisher. Beyond it the oldest are forgotten: they stay
/// missing, and should one arrive after all it is counted as a duplicate.
pub const MAX_GAPS: usize = 4096;

/// How one message arrived at one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next one expected.
    InOrder,
    /// Later than expected: this many before it have not arrived (yet).
    Ahead(u64),
    /// One that had been skipped: out of order.
    Late,
    /// Already received: duplicated.
    Repeat,
}

impl Arrival {
    /// Whether it is a delivery (the first arrival of its message here).
    pub fn is_delivery(self) -> bool {
        self != Arrival::Repeat
    }
}

/// One receiver's view of one publisher's stream.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    next: u64,
    gaps: BTreeSet<u64>,
}

impl Sequence {
    /// Whether `seq` has arrived.
    pub fn has(&self, seq: u64) -> bool {
        seq < self.next && !self.gaps.contains(&seq)
    }

    /// Records the arrival of `seq`.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        if seq == self.next {
            self.next = seq.saturating_add(1);
            return Arrival::InOrder;
        }
        if seq > self.next {
            let skipped = seq - self.next;
            // Remember at most MAX_GAPS of them, the most recent.
            let from = self.next.max(seq.saturating_sub(MAX_GAPS as u64));
            self.gaps.extend(from..seq);
            while self.gaps.len() > MAX_GAPS {
                self.gaps.pop_first();
            }
            self.next = seq.saturating_add(1);
            return Arrival::Ahead(skipped);
        }
        if self.gaps.remove(&seq) {
            Arrival::Late
        } else {
            Arrival::Repeat
        }
    }
}

/// The messages not yet received everywhere, and the latest delivery of each so far: when its
/// last receiver gets it, that is the message's "slowest subscriber" latency.
#[derive(Debug, Default)]
pub struct Fanout {
    receivers: u32,
    pending: HashMap<(u32, u64), Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    left: u32,
    slowest_ns: u64,
}

impl Fanout {
    /// Every message is expected at `receivers` receivers.
    pub fn new(receivers: u32) -> Fanout {
        Fanout {
            receivers,
            pending: HashMap::new(),
        }
    }

    /// `seq` of `publisher` was sent.
    pub fn published(&mut self, publisher: u32, seq: u64) {
        if self.receivers > 0 && self.pending.len() < MAX_PENDING {
            self.pending.insert(
                (publisher, seq),
                Pending {
                    left: self.receivers,
                    slowest_ns: 0,
                },
            );
        }
    }

    /// One receiver got it (first arrival there) `latency_ns` after it was sent. Returns the
    /// slowest receiver's latency once every receiver has it.
    pub fn delivered(&mut self, publisher: u32, seq: u64, latency_ns: u64) -> Option<u64> {
        let key = (publisher, seq);
        let pending = self.pending.get_mut(&key)?;
        pending.left -= 1;
        pending.slowest_ns = pending.slowest_ns.max(latency_ns);
        if pending.left > 0 {
            return None;
        }
        let slowest = pending.slowest_ns;
        self.pending.remove(&key);
        Some(slowest)
    }

    /// A receiver left: messages published from now on expect one fewer, and those it had
    /// not got no longer wait for it (`had` says whether it got one). Returns the slowest
    /// latencies of the messages that are now complete.
    pub fn leave(&mut self, had: impl Fn(u32, u64) -> bool) -> Vec<u64> {
        self.receivers = self.receivers.saturating_sub(1);
        let mut complete = Vec::new();
        self.pending.retain(|&(publisher, seq), pending| {
            if had(publisher, seq) {
                return true;
            }
            pending.left -= 1;
            if pending.left == 0 {
                complete.push(pending.slowest_ns);
            }
            pending.left > 0
        });
        complete
    }

    /// Messages some receiver has not got.
    pub fn incomplete(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each arrival pattern is classified once: in order, a gap, the gap filled late, a repeat.
    #[test]
    fn arrivals() {
        let mut s = Sequence::default();
        let seen: Vec<Arrival> = [0, 1, 4, 2, 2, 5, 3, 3, 0].map(|q| s.arrive(q)).to_vec();
        assert_eq!(
            seen,
            [
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Ahead(2),
                Arrival::Late,
                Arrival::Repeat,
                Arrival::InOrder,
                Arrival::Late,
                Arrival::Repeat,
                Arrival::Repeat,
            ]
        );
        let deliveries = seen.iter().filter(|a| a.is_delivery()).count();
        assert_eq!(deliveries, 6, "0 to 5, once each");
    }

    /// A gap wider than the memory keeps only its most recent part.
    #[test]
    fn gaps_are_bounded() {
        let mut s = Sequence::default();
        let far = (MAX_GAPS as u64) * 3;
        assert_eq!(s.arrive(far), Arrival::Ahead(far));
        assert_eq!(s.gaps.len(), MAX_GAPS);
        assert_eq!(s.arrive(far - 1), Arrival::Late);
        assert_eq!(
            s.arrive(0),
            Arrival::Repeat,
            "forgotten: told from a repeat no more"
        );
    }

    /// A message's slowest latency is known when its last receiver has it, and not before.
    #[test]
    fn slowest_receiver() {
        let mut f = Fanout::new(3);
        f.published(0, 0);
        f.published(1, 0);
        assert_eq!(f.delivered(0, 0, 500), None);
        assert_eq!(f.delivered(0, 0, 900), None);
        assert_eq!(f.delivered(0, 0, 700), Some(900));
        assert_eq!(f.delivered(0, 0, 100), None, "not pending any more");
        assert_eq!(f.delivered(1, 0, 100), None);
        assert_eq!(f.incomplete(), 1);
        assert_eq!(f.delivered(7, 7, 1), None, "never published");
        // The receiver that had not got (1, 0) leaves: it completes with what it had.
        assert_eq!(f.delivered(1, 0, 300), None);
        assert_eq!(f.leave(|_, _| false), [300]);
        assert_eq!(f.incomplete(), 0);
        f.published(2, 0);
        assert_eq!(f.delivered(2, 0, 5), None);
        assert_eq!(f.delivered(2, 0, 6), Some(6), "two receivers left");
    }

    /// `has` agrees with what arrived, gaps included.
    #[test]
    fn has() {
        let mut s = Sequence::default();
        for q in [0, 1, 3] {
            s.arrive(q);
        }
        assert_eq!(
            [0, 1, 2, 3, 4].map(|q| s.has(q)),
            [true, true, false, true, false]
        );
    }
}
