//! The run's timeline, assembled as it happens: every worker sends each second of its measured
//! window when it ends; a second is complete once every worker has sent it (or has stopped and
//! never will), and complete seconds are released in order — to the live progress line and the
//! HDR interval log as they come, and to the report at the end. Seconds merge exactly
//! ([`Second::add`]), so the timeline of a run is the same whatever its thread count.

use std::collections::BTreeMap;

use echobench_core::measurement::Second;

/// Seconds being assembled from the workers.
#[derive(Debug)]
pub(crate) struct Timeline {
    /// Per pending second: which workers have sent it, and its merge so far.
    pending: BTreeMap<u32, (Vec<bool>, Second)>,
    /// Workers that will send nothing more.
    stopped: Vec<bool>,
    /// Complete seconds, in order.
    done: Vec<Second>,
}

impl Timeline {
    /// An empty timeline for `workers` workers.
    pub(crate) fn new(workers: usize) -> Timeline {
        Timeline {
            pending: BTreeMap::new(),
            stopped: vec![false; workers],
            done: Vec::new(),
        }
    }

    /// `worker` sent `second`. Returns the seconds that are now complete, in order.
    pub(crate) fn add(&mut self, worker: usize, second: &Second) -> &[Second] {
        let workers = self.stopped.len();
        let (reported, merged) = self
            .pending
            .entry(second.index)
            .or_insert_with(|| (vec![false; workers], Second::new(second.index, false)));
        if let Some(flag) = reported.get_mut(worker) {
            *flag = true;
        }
        merged.add(second);
        self.release()
    }

    /// `worker` stopped: it will send no more seconds. Returns the seconds now complete.
    pub(crate) fn stopped(&mut self, worker: usize) -> &[Second] {
        if let Some(flag) = self.stopped.get_mut(worker) {
            *flag = true;
        }
        self.release()
    }

    /// Every second, complete or not (every worker has stopped).
    pub(crate) fn finish(mut self) -> Vec<Second> {
        self.stopped.fill(true);
        self.release();
        self.done
    }

    fn release(&mut self) -> &[Second] {
        let from = self.done.len();
        while let Some(entry) = self.pending.first_entry() {
            let complete = entry
                .get()
                .0
                .iter()
                .zip(&self.stopped)
                .all(|(&reported, &stopped)| reported || stopped);
            if !complete {
                break;
            }
            self.done.push(entry.remove().1);
        }
        &self.done[from..]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use echobench_core::latency;

    use super::*;

    fn second(index: u32, round_trips: u64, nanos: u64) -> Second {
        let mut s = Second::new(index, false);
        s.duration = Duration::from_secs(1);
        s.round_trips = round_trips;
        latency::record(&mut s.round_trip, nanos);
        s
    }

    fn indexes(seconds: &[Second]) -> Vec<(u32, u64)> {
        seconds.iter().map(|s| (s.index, s.round_trips)).collect()
    }

    /// A second is released once both workers sent it, in order, merged; a stopped worker
    /// no longer holds seconds back; finish releases the rest.
    #[test]
    fn assembles_in_order() {
        let mut t = Timeline::new(2);
        assert!(t.add(0, &second(0, 5, 100)).is_empty());
        assert!(t.add(0, &second(1, 6, 100)).is_empty());
        assert_eq!(indexes(t.add(1, &second(0, 7, 300))), [(0, 12)]);
        assert_eq!(indexes(t.add(1, &second(1, 2, 100))), [(1, 8)]);
        assert!(
            t.add(1, &second(2, 1, 100)).is_empty(),
            "worker 0 has not sent second 2"
        );
        assert!(t.stopped(1).is_empty());
        assert_eq!(
            indexes(t.stopped(0)),
            [(2, 1)],
            "a stopped worker holds nothing back"
        );
        let mut t2 = Timeline::new(2);
        t2.add(0, &second(0, 1, 100));
        assert_eq!(indexes(&t2.finish()), [(0, 1)]);
        let all = t.finish();
        assert_eq!(indexes(&all), [(0, 12), (1, 8), (2, 1)]);
        assert_eq!(
            all[0].round_trip.len(),
            2,
            "histograms merged, not replaced"
        );
    }
}
