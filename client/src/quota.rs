//! The `-n/--total` quota and the `-r/--roundtrips` lifetime of a connection, in one place.
//!
//! A run may be bounded in round trips (`-n N`), and each connection may be bounded too
//! (`-r R`, replaced after R). The total is split among the workers by [`split`] — in whole
//! connections' worth when connections are bounded, so `-c 4 -r 10 -n 400` opens exactly 40
//! connections whatever the thread count — and each worker hands its share out through a
//! [`Quota`]: a connection takes a [`Claim`] when it opens, asks for a [`Turn`] before every
//! round trip, and gives back what it did not use when it ends. With `-r 0` a connection's
//! claim is open-ended and turns come from the worker's pool one by one. Pure: no clock, no I/O.

/// What one worker may still start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quota {
    /// Round trips per connection (`-r`); `None` with `-r 0` (kept for the whole run).
    per_connection: Option<u64>,
    /// Round trips not yet claimed (`-n` share); `None` without `-n`.
    left: Option<u64>,
}

/// The round trips one connection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// How many it may still do; `None` with `-r 0`, whose turns come from the pool.
    left: Option<u64>,
}

/// Permission for one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    /// The connection's final round trip: its last claimed one, or the run's last ticket.
    /// HTTP then sends `Connection: close`.
    pub last: bool,
}

impl Quota {
    /// A worker's quota: `roundtrips` per connection (0 = unbounded) and `share` of `-n`.
    pub(crate) fn new(roundtrips: u64, share: Option<u64>) -> Quota {
        Quota {
            per_connection: (roundtrips > 0).then_some(roundtrips),
            left: share,
        }
    }

    /// A new connection's claim; `None` once the quota is used up (the client then stops).
    pub(crate) fn connect(&mut self) -> Option<Claim> {
        if self.left == Some(0) {
            return None;
        }
        let Some(per_connection) = self.per_connection else {
            return Some(Claim { left: None });
        };
        let take = match &mut self.left {
            None => per_connection,
            Some(left) => {
                let take = per_connection.min(*left);
                *left -= take;
                take
            }
        };
        Some(Claim { left: Some(take) })
    }

    /// The next round trip on the connection holding `claim`, if it may have one.
    pub(crate) fn turn(&mut self, claim: &mut Claim) -> Option<Turn> {
        let remaining = match &mut claim.left {
            Some(left) => left,
            None => match &mut self.left {
                None => return Some(Turn { last: false }),
                Some(left) => left,
            },
        };
        if *remaining == 0 {
            return None;
        }
        *remaining -= 1;
        Some(Turn {
            last: *remaining == 0,
        })
    }

    /// `turns` taken for `claim` were never carried out (the rest of a pipelined batch after
    /// its failure): they go back, so `-n` still counts every round trip as completed or
    /// failed exactly once.
    pub(crate) fn give_back(&mut self, claim: &mut Claim, turns: u64) {
        match (&mut claim.left, &mut self.left) {
            (Some(left), _) | (None, Some(left)) => *left += turns,
            (None, None) => {}
        }
    }

    /// The connection holding `claim` ended: what it did not use goes back to the pool.
    #[allow(clippy::needless_pass_by_value)] // taking the claim ends it: no second release
    pub(crate) fn release(&mut self, claim: Claim) {
        if let (Some(unused), Some(left)) = (claim.left, &mut self.left) {
            *left += unused;
        }
    }
}

pub(crate) use echobench_core::shard::split_total as split;

#[cfg(test)]
mod tests {
    use super::*;

    /// Turns given back are taken again: with r=3, two taken and one given back leave two.
    #[test]
    fn give_back() {
        let mut quota = Quota::new(3, Some(3));
        let mut claim = quota.connect().unwrap();
        assert!(quota.turn(&mut claim).is_some());
        assert!(quota.turn(&mut claim).is_some());
        quota.give_back(&mut claim, 1);
        assert_eq!(quota.turn(&mut claim).map(|t| t.last), Some(false));
        assert_eq!(quota.turn(&mut claim).map(|t| t.last), Some(true));
        assert!(quota.turn(&mut claim).is_none());
        // Kept connections (r=0) give back to the pool.
        let mut pool = Quota::new(0, Some(1));
        let mut kept = pool.connect().unwrap();
        assert!(pool.turn(&mut kept).is_some());
        pool.give_back(&mut kept, 1);
        assert!(pool.turn(&mut kept).is_some());
        assert!(pool.turn(&mut kept).is_none());
    }

    /// Shares go in whole connections, add up to the total, and do not depend on how the
    /// connections fall on threads.
    #[test]
    fn splits() {
        let cases: [(u64, u64, &[usize], &[u64]); 6] = [
            (400, 10, &[2, 2], &[200, 200]),
            (400, 10, &[2, 1, 1], &[200, 100, 100]),
            (100, 10, &[2, 1], &[60, 40]),
            (95, 10, &[2, 1], &[60, 35]),
            (11, 0, &[3, 2], &[6, 5]),
            (7, 0, &[1], &[7]),
        ];
        for (total, roundtrips, clients, shares) in cases {
            let got = split(total, roundtrips, clients);
            assert_eq!(got, shares, "n={total} r={roundtrips} clients={clients:?}");
            assert_eq!(got.iter().sum::<u64>(), total);
        }
    }

    /// Drives one connection to its end: the turns it got and whether the last was marked.
    fn drain(quota: &mut Quota, claim: &mut Claim, limit: usize) -> Vec<bool> {
        std::iter::from_fn(|| quota.turn(claim).map(|t| t.last))
            .take(limit)
            .collect()
    }

    /// `-r 3 -n 7`: connections get 3, 3, then 1; the last turn of each is marked; then none.
    #[test]
    fn bounded_connections_with_a_total() {
        let mut q = Quota::new(3, Some(7));
        let mut got = Vec::new();
        while let Some(mut claim) = q.connect() {
            got.push(drain(&mut q, &mut claim, 10));
            q.release(claim);
        }
        assert_eq!(
            got,
            [
                vec![false, false, true],
                vec![false, false, true],
                vec![true]
            ]
        );
    }

    /// A connection that ends early gives its unused round trips back to the next one.
    #[test]
    fn unused_round_trips_return() {
        let mut q = Quota::new(5, Some(5));
        let mut first = q.connect().unwrap();
        assert_eq!(q.turn(&mut first), Some(Turn { last: false }));
        assert_eq!(q.connect(), None, "all five are claimed");
        q.release(first);
        let mut second = q.connect().unwrap();
        assert_eq!(drain(&mut q, &mut second, 10), [false, false, false, true]);
    }

    /// `-r 0 -n 4` over two connections: turns come from the shared pool, the run's last
    /// ticket is marked last wherever it falls, and then no connection gets another.
    #[test]
    fn open_ended_connections_share_the_pool() {
        let mut q = Quota::new(0, Some(4));
        let mut claims = [q.connect().unwrap(), q.connect().unwrap()];
        let mut lasts = Vec::new();
        for _ in 0..3 {
            for claim in &mut claims {
                if let Some(turn) = q.turn(claim) {
                    lasts.push(turn.last);
                }
            }
        }
        assert_eq!(lasts, [false, false, false, true]);
        let [a, _] = claims;
        q.release(a);
        assert_eq!(q.connect(), None);
    }

    /// Without `-n` nothing runs out: `-r 2` connections get two turns each, forever; `-r 0`
    /// connections never end.
    #[test]
    fn unbounded() {
        let mut q = Quota::new(2, None);
        for _ in 0..3 {
            let mut claim = q.connect().unwrap();
            assert_eq!(drain(&mut q, &mut claim, 10), [false, true]);
            q.release(claim);
        }
        let mut q = Quota::new(0, None);
        let mut claim = q.connect().unwrap();
        assert_eq!(drain(&mut q, &mut claim, 1000).len(), 1000);
        assert!(drain(&mut q, &mut claim, 1000).iter().all(|last| !last));
    }
}
