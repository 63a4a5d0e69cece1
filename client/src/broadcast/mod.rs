//! `--workload broadcast`: every connection subscribes to a relay (`ws://HOST/broadcast`, or
//! `tcp://` against `echo-server tcp --broadcast`), and the first `--publishers` of them also
//! publish — at `--rate` in total (open loop, each publisher on its own schedule) or, without
//! a rate, each keeping `--pipeline` of its own messages in flight (closed loop: the next goes
//! when one comes back to it). Every receiver checks and times every message it gets, so the
//! report has the delivery latency over all deliveries and, per message, the latency until its
//! last subscriber had it.
//!
//! The run: open every connection; publisher 0 sends sync messages until every subscriber
//! has seen one (so all are subscribed before anything is counted); `--warmup` of load, then
//! the measured window; at its end publishing stops and the client waits, at most
//! `--timeout`, for every message in flight to reach every subscriber that is still
//! connected. Counts are then exact: delivered + missing = published x subscribers.
//!
//! One connection task per subscriber on the calling thread's runtime (`-t` does not apply);
//! the publishers send from a thread of their own ([`publish`]).

pub mod message;
mod publish;
pub mod tracker;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use echobench_core::Config;
use echobench_core::broadcast::{BroadcastCounts, BroadcastSummary};
use echobench_core::error::ErrorLog;
use echobench_core::latency;
use echobench_core::measurement::{CpuUse, Measurement};
use echobench_core::monitor;
use echobench_core::report::{Report, SloOutcome};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::error::Failure;
use crate::protocol::{Stream, dial};
use crate::run::{RunError, RunOptions};
use crate::target::{Protocol, Target};
use message::{Stamp, decode, encode};
use publish::{Schedule, Shared};
use tracker::{Arrival, Fanout, Sequence};

/// The publisher used for sync messages, which are never counted.
const SYNC: u32 = u32::MAX;

/// Where a receiver's messages come from.
enum Reader {
    Ws(SplitStream<WebSocketStream<Stream>>),
    Tcp(ReadHalf<Stream>),
}

/// Where a publisher's messages go.
enum Writer {
    Ws(SplitSink<WebSocketStream<Stream>, Message>),
    Tcp(WriteHalf<Stream>),
}

/// Opens one subscriber connection.
async fn open(target: &Target, size: usize) -> Result<(Reader, Writer), Failure> {
    let (stream, _opened) = dial(target).await?;
    match target.protocol {
        Protocol::WebSocket => {
            // Nothing larger than a message is ever accepted from the relay; the read buffer
            // is the echo connection's (tungstenite's default zero-fills 128 KiB before every
            // read: half the client's CPU at 1,000 subscribers, 39 µs per delivery).
            let limit = size.max(1024);
            let config = WebSocketConfig::default()
                .read_buffer_size(crate::protocol::ws::read_buffer(size, 1))
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let ws = crate::protocol::upgrade::upgrade(target, stream, config).await?;
            let (sink, stream) = ws.split();
            Ok((Reader::Ws(stream), Writer::Ws(sink)))
        }
        Protocol::Tcp => {
            let (read, write) = tokio::io::split(stream);
            Ok((Reader::Tcp(read), Writer::Tcp(write)))
        }
        Protocol::Http => Err(Failure::ProtocolError(
            "HTTP has no broadcast: use ws://HOST:PORT/broadcast or tcp:// against a relay"
                .to_owned(),
        )),
    }
}

impl Reader {
    /// The next message, `None` when the relay closed the connection. A TCP frame longer than
    /// `size` is refused before any of it is read.
    async fn next(&mut self, size: usize) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Reader::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
                    Some(Ok(Message::Text(t))) => return Ok(Some(t.as_bytes().to_vec())),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(Failure::ProtocolError(err.to_string())),
                }
            },
            Reader::Tcp(tcp) => {
                let mut header = [0u8; 4];
                match tcp.read_exact(&mut header).await {
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(err) => return Err(Failure::ClosedByPeer(err.to_string())),
                }
                let len = u32::from_be_bytes(header) as usize;
                if len > size {
                    return Err(Failure::ProtocolError(format!(
                        "the relay framed a {len}-byte message where every message is {size} bytes"
                    )));
                }
                let mut payload = vec![0u8; len];
                tcp.read_exact(&mut payload)
                    .await
                    .map_err(|err| Failure::ClosedByPeer(err.to_string()))?;
                Ok(Some(payload))
            }
        }
    }
}

impl Writer {
    async fn send(&mut self, payload: &[u8]) -> Result<(), Failure> {
        match self {
            Writer::Ws(ws) => ws
                .send(Message::binary(payload.to_vec()))
                .await
                .map_err(|err| Failure::SendFailed(std::io::Error::other(err.to_string()))),
            Writer::Tcp(tcp) => {
                let mut frame = Vec::with_capacity(4 + payload.len());
                frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                frame.extend_from_slice(payload);
                tcp.write_all(&frame).await.map_err(Failure::SendFailed)
            }
        }
    }
}

/// Everything the connection tasks share (one thread).
struct State {
    size: usize,
    epoch: Instant,
    /// Counting: between the window's start and the end of the drain.
    counting: bool,
    /// The window lasts (counting, and the drain has not begun).
    in_window: bool,
    /// Arrivals of published messages while the window lasted (see
    /// [`BroadcastSummary::arrived_in_window`]).
    arrived_in_window: u64,
    /// Shared with the publisher thread: what each publisher has sent, its own in flight.
    shared: Arc<Shared>,
    /// Per publisher, the next of the window's messages to await at every receiver
    /// (registered with the `Fanout` on the first arrival of it or of a later one).
    registered: Vec<u64>,
    /// Per publisher, the first sequence number of the window and the first after it.
    window: Vec<(u64, u64)>,
    /// Per subscriber, per publisher.
    sequences: Vec<Vec<Sequence>>,
    /// Subscribers that have seen a sync message.
    synced: Vec<bool>,
    /// Subscribers still connected.
    alive: Vec<bool>,
    /// Per subscriber, the window's messages it has had.
    had: Vec<u64>,
    fanout: Fanout,
    delivery: Histogram<u64>,
    /// Open loop: when each publish was due, and the delivery latency from then.
    schedule: Option<Schedule>,
    corrected: Option<Histogram<u64>>,
    slowest: Histogram<u64>,
    /// Duplicated, out of order, malformed and dropped as they happen; the rest after the
    /// drain.
    counts: BroadcastCounts,
    errors: ErrorLog,
}

impl State {
    /// `subscriber`'s connection ended: it is dropped, and messages stop waiting for it.
    fn left(&mut self, subscriber: usize, failure: &Failure) {
        self.counts.subscribers_dropped += 1;
        self.alive[subscriber] = false;
        failure.log_into(&mut self.errors);
        if !self.counting {
            return;
        }
        let (sequences, window) = (&self.sequences[subscriber], &self.window);
        let completed = self.fanout.leave(|publisher, seq| {
            let first = window[publisher as usize].0;
            sequences[publisher as usize].has(seq - first)
        });
        for slowest in completed {
            latency::record(&mut self.slowest, slowest);
        }
    }

    /// Whether every subscriber still connected has every message of the window.
    fn complete(&self, published: u64) -> bool {
        self.alive
            .iter()
            .zip(&self.had)
            .all(|(alive, had)| !alive || *had >= published)
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// One message arrived at `subscriber`.
    fn arrived(&mut self, subscriber: usize, bytes: &[u8]) {
        let stamp = match decode(bytes, self.size) {
            Ok(stamp) => stamp,
            Err(err) => {
                self.counts.malformed += 1;
                Failure::ProtocolError(err.to_string()).log_into(&mut self.errors);
                return;
            }
        };
        if stamp.publisher == SYNC {
            self.synced[subscriber] = true;
            return;
        }
        let p = stamp.publisher as usize;
        // A stamp nobody sent: forged or corrupted past the header check.
        if p >= self.shared.sent.len() || stamp.seq >= self.shared.sent[p].load(Ordering::Acquire) {
            self.counts.malformed += 1;
            Failure::ProtocolError("a message no publisher of this run sent".to_owned())
                .log_into(&mut self.errors);
            return;
        }
        if p == subscriber {
            self.shared.returned(p);
        }
        let (first, end) = self.window[p];
        if !self.counting || stamp.seq < first || stamp.seq >= end {
            // A warmup message arriving in the window still is what the relay delivered then.
            self.arrived_in_window += u64::from(self.in_window);
            return;
        }
        let arrival = self.sequences[subscriber][p].arrive(stamp.seq - first);
        if arrival != Arrival::Repeat {
            self.arrived_in_window += u64::from(self.in_window);
        }
        let now = self.now_ns();
        let latency = now.saturating_sub(stamp.sent_ns);
        match arrival {
            Arrival::Repeat => self.counts.duplicated += 1,
            Arrival::Late | Arrival::InOrder | Arrival::Ahead(_) => {
                if arrival == Arrival::Late {
                    self.counts.out_of_order += 1;
                }
                self.had[subscriber] += 1;
                latency::record(&mut self.delivery, latency);
                if let (Some(schedule), Some(corrected)) = (&self.schedule, &mut self.corrected) {
                    let due = schedule.due_ns(p, stamp.seq);
                    latency::record(corrected, now.saturating_sub(due));
                }
                // Awaited at every receiver from its first arrival anywhere (or a later one's):
                // the publisher thread does not touch the fanout.
                while self.registered[p] <= stamp.seq {
                    self.fanout.published(stamp.publisher, self.registered[p]);
                    self.registered[p] += 1;
                }
                if let Some(slowest) = self.fanout.delivered(stamp.publisher, stamp.seq, latency) {
                    latency::record(&mut self.slowest, slowest);
                }
            }
        }
    }
}

/// Runs `--workload broadcast` and reports it: its deliveries are the report's round trips
/// (those that arrived in the window; `broadcast.delivered` counts the window's messages, drain
/// included) and their latency its round-trip latency (corrected from each publish's due time
/// in open loop); the counts are in `report.broadcast`, and `--slo` is judged on deliveries.
pub(crate) async fn run(
    config: Config,
    target: Target,
    options: RunOptions,
) -> Result<Report, RunError> {
    let interrupt = options.interrupt.unwrap_or_default();
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(Box::pin(measure(&config, &target, &interrupt)))
        .await
        .map_err(RunError::Setup)?;
    let mut m = Measurement::new(outcome.started_at, false);
    m.measured = outcome.measured;
    m.interrupted = outcome.interrupted;
    m.counts.round_trips = outcome.summary.arrived_in_window;
    m.counts.connections_opened = u64::from(config.connections);
    m.counts.pacer_late_sends = outcome.pacer_late;
    m.errors = outcome.errors;
    m.latencies.round_trip = outcome.delivery;
    m.latencies.corrected = outcome.corrected;
    // One thread does all the work.
    m.cpu = CpuUse {
        threads: 1,
        allowed_cpus: monitor::allowed_cpus(),
        capacity_cpus: 1.0,
        process: outcome.bracket.cpu,
        busiest_thread: outcome.bracket.cpu.saturating_sub(outcome.idle_spin),
        idle_spin: outcome.idle_spin,
    };
    m.steal_percent = outcome.bracket.steal_percent;
    let mut report = crate::run::report(&config, &target, 1, &m);
    // What --slo means here: the deliveries, not the publishes (see BroadcastSummary::judge).
    if let Some(slo) = &config.slo {
        let latency = m
            .latencies
            .corrected
            .as_ref()
            .unwrap_or(&m.latencies.round_trip);
        let checks = outcome
            .summary
            .judge(slo, latency, outcome.measured, config.rate);
        report.slo = Some(SloOutcome {
            met: checks.iter().all(|c| c.met),
            checks,
            aborted: false,
        });
    }
    report.broadcast = Some(outcome.summary);
    Ok(report)
}

/// Opens the subscribers one after another (paced by `--connect-rate` if given), syncs them,
/// publishes, drains, and returns what was counted. Fails when a subscriber cannot connect,
/// the sync does not complete, or every subscriber's connection ended before the load began.
async fn measure(
    config: &Config,
    target: &Target,
    interrupt: &CancellationToken,
) -> Result<Outcome, String> {
    let subscribers = config.connections as usize;
    let publishers = config.broadcast.map_or(1, |b| b.publishers) as usize;
    let size = config.size;
    let epoch = Instant::now();
    let state = Rc::new(RefCell::new(State {
        size,
        epoch,
        counting: false,
        in_window: false,
        arrived_in_window: 0,
        shared: Arc::new(Shared::new(publishers)),
        registered: vec![0; publishers],
        window: vec![(0, 0); publishers],
        sequences: vec![vec![Sequence::default(); publishers]; subscribers],
        synced: vec![false; subscribers],
        alive: vec![true; subscribers],
        had: vec![0; subscribers],
        fanout: Fanout::new(0),
        delivery: latency::histogram(),
        schedule: None,
        corrected: config.rate.map(|_| latency::histogram()),
        slowest: latency::histogram(),
        counts: BroadcastCounts::default(),
        errors: ErrorLog::default(),
    }));

    // Open every connection, paced by --connect-rate if given.
    let mut writers = Vec::with_capacity(publishers);
    let mut readers = Vec::with_capacity(subscribers);
    let gap = config
        .connect_rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(1e-3)));
    for i in 0..subscribers {
        if let Some(gap) = gap {
            tokio::time::sleep_until(epoch + gap * i as u32).await;
        }
        let opened = tokio::time::timeout(config.connect_timeout, open(target, size)).await;
        let (reader, writer) = match opened {
            Ok(Ok(pair)) => pair,
            Ok(Err(failure)) => return Err(format!("subscriber {i} could not connect: {failure}")),
            Err(_) => {
                return Err(format!(
                    "subscriber {i} did not connect within --connect-timeout"
                ));
            }
        };
        readers.push(reader);
        if i < publishers {
            writers.push(writer);
        }
    }

    // Every subscriber reads on its own task until the relay closes it or the run ends.
    let stop = CancellationToken::new();
    let mut tasks = Vec::with_capacity(subscribers);
    for (i, mut reader) in readers.into_iter().enumerate() {
        let state = Rc::clone(&state);
        let stop = stop.clone();
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = reader.next(size) => next,
                };
                match next {
                    Ok(Some(bytes)) => state.borrow_mut().arrived(i, &bytes),
                    Ok(None) => {
                        let closed =
                            Failure::ClosedByPeer("the relay closed a subscriber".to_owned());
                        state.borrow_mut().left(i, &closed);
                        return;
                    }
                    Err(failure) => {
                        state.borrow_mut().left(i, &failure);
                        return;
                    }
                }
            }
        }));
    }

    // Sync: publisher 0 sends sync messages until every subscriber has one.
    let mut buf = vec![0u8; size];
    let sync_deadline = Instant::now() + config.warmup_timeout;
    let mut sync_seq = 0u64;
    let all_synced = |s: &State| {
        s.synced
            .iter()
            .zip(&s.alive)
            .all(|(synced, alive)| *synced || !alive)
    };
    while !all_synced(&state.borrow()) {
        if Instant::now() >= sync_deadline {
            let synced = state.borrow().synced.iter().filter(|s| **s).count();
            return Err(format!(
                "only {synced} of {subscribers} subscribers received the relay's messages within --warmup-timeout: is {} a broadcast relay?",
                target.url
            ));
        }
        let now = state.borrow().now_ns();
        encode(
            &mut buf,
            Stamp {
                publisher: SYNC,
                seq: sync_seq,
                sent_ns: now,
            },
        );
        sync_seq += 1;
        writers[0]
            .send(&buf)
            .await
            .map_err(|f| format!("the sync publisher failed: {f}"))?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !state.borrow().alive.iter().any(|a| *a) {
        let s = state.borrow();
        let why = s
            .errors
            .kinds
            .values()
            .find_map(|e| e.samples.first().cloned())
            .unwrap_or_default();
        return Err(format!(
            "every subscriber's connection to {} ended before the load began: {why}",
            target.url
        ));
    }
    // Boxed: its state is large and only alive while the load runs.
    let outcome = Box::pin(publish::publish(config, &state, writers, interrupt)).await;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    outcome
}

/// What a broadcast run produced.
struct Outcome {
    /// The counts and latencies.
    pub summary: BroadcastSummary,
    /// Open loop: publishes of the window that left late by the client's doing.
    pub pacer_late: u64,
    /// The pacer's busy-waiting with nothing else to do (not the load's CPU).
    pub idle_spin: Duration,
    /// The delivery latency histogram.
    pub delivery: Histogram<u64>,
    /// Open loop: the delivery latency from when each message was due.
    pub corrected: Option<Histogram<u64>>,
    /// The errors seen.
    pub errors: ErrorLog,
    /// The measured window.
    pub measured: Duration,
    /// Its wall-clock start.
    pub started_at: std::time::SystemTime,
    /// Cut short by an interrupt.
    pub interrupted: bool,
    /// The process's CPU and the machine's steal over the window.
    pub bracket: echobench_core::monitor::Bracketed,
}
