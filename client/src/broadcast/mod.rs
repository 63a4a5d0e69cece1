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
//! One connection task per subscriber on the calling thread's runtime (`-t` does not apply).

pub mod message;
pub mod tracker;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use echobench_core::Config;
use echobench_core::broadcast::BroadcastSummary;
use echobench_core::error::ErrorLog;
use echobench_core::latency::{self, Percentiles};
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
use crate::pacer::Pacer;
use crate::protocol::{Stream, dial};
use crate::target::{Protocol, Target};
use echobench_core::thresholds::PACER_LATE;
use message::{Stamp, decode, encode};
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
            let ws = crate::protocol::ws::upgrade(target, stream, config).await?;
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
    /// Messages sent by each publisher so far (its next sequence number), counted or not.
    sent: Vec<u64>,
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
    slowest: Histogram<u64>,
    duplicated: u64,
    out_of_order: u64,
    malformed: u64,
    dropped: u64,
    errors: ErrorLog,
    /// Open loop: the window's publishes that left more than `PACER_LATE` after they were
    /// due (the client's own doing: a publisher never waits for an answer).
    pacer_late: u64,
    /// Per publisher, own messages in flight (closed loop).
    own_in_flight: Vec<usize>,
    wake: Vec<Rc<tokio::sync::Notify>>,
}

impl State {
    /// `subscriber`'s connection ended: it is dropped, and messages stop waiting for it.
    fn left(&mut self, subscriber: usize, failure: &Failure) {
        self.dropped += 1;
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
                self.malformed += 1;
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
        if p >= self.sent.len() || stamp.seq >= self.sent[p] {
            self.malformed += 1;
            Failure::ProtocolError("a message no publisher of this run sent".to_owned())
                .log_into(&mut self.errors);
            return;
        }
        if p == subscriber {
            self.own_in_flight[p] = self.own_in_flight[p].saturating_sub(1);
            self.wake[p].notify_one();
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
        let latency = self.now_ns().saturating_sub(stamp.sent_ns);
        match arrival {
            Arrival::Repeat => self.duplicated += 1,
            Arrival::Late | Arrival::InOrder | Arrival::Ahead(_) => {
                if arrival == Arrival::Late {
                    self.out_of_order += 1;
                }
                self.had[subscriber] += 1;
                latency::record(&mut self.delivery, latency);
                if let Some(slowest) = self.fanout.delivered(stamp.publisher, stamp.seq, latency) {
                    latency::record(&mut self.slowest, slowest);
                }
            }
        }
    }
}

/// Runs the broadcast workload: opens the subscribers one after another (paced by
/// `--connect-rate` if given), syncs them, publishes, drains, and returns what was counted.
/// Fails when a subscriber cannot connect, the sync does not complete, or every subscriber's
/// connection ended before the load began.
pub(crate) async fn run(
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
        sent: vec![0; publishers],
        window: vec![(0, 0); publishers],
        sequences: vec![vec![Sequence::default(); publishers]; subscribers],
        synced: vec![false; subscribers],
        alive: vec![true; subscribers],
        had: vec![0; subscribers],
        fanout: Fanout::new(0),
        delivery: latency::histogram(),
        slowest: latency::histogram(),
        duplicated: 0,
        out_of_order: 0,
        malformed: 0,
        dropped: 0,
        errors: ErrorLog::default(),
        pacer_late: 0,
        own_in_flight: vec![0; publishers],
        wake: (0..publishers)
            .map(|_| Rc::new(tokio::sync::Notify::new()))
            .collect(),
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
    let outcome = Box::pin(publish(config, &state, writers, interrupt)).await;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    outcome
}

/// Publishes through the warmup and the window, then drains; returns the outcome.
async fn publish(
    config: &Config,
    state: &Rc<RefCell<State>>,
    writers: Vec<Writer>,
    interrupt: &CancellationToken,
) -> Result<Outcome, String> {
    let publishers = writers.len();
    let size = config.size;
    let subscribers = config.connections;
    let stop_publishing = CancellationToken::new();
    let failed: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let began = Instant::now();
    // Open loop: the echo workers' timerfd pacer releases each publish at its instant (tokio's
    // timer alone wakes up to a millisecond late).
    let pacer = match config.rate {
        Some(_) => {
            Some(Rc::new(Pacer::new(publishers).map_err(|err| {
                format!("cannot create the pacer's timer: {err}")
            })?))
        }
        None => None,
    };
    let driver = pacer.clone().map(|pacer| {
        tokio::task::spawn_local(async move {
            let _ = pacer.drive().await;
        })
    });
    let mut tasks = Vec::with_capacity(publishers);
    for (p, mut writer) in writers.into_iter().enumerate() {
        let state = Rc::clone(state);
        let pacer = pacer.clone();
        let stop = stop_publishing.clone();
        let failed = Rc::clone(&failed);
        let rate = config.rate.map(|r| r / publishers as f64);
        let in_flight = config.pipeline.max(1);
        tasks.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; size];
            let mut k: u64 = 0;
            loop {
                let mut due = None;
                match (rate, &pacer) {
                    // Open loop: publisher p's k-th message is due at (k + p / P) / rate.
                    (Some(rate), Some(pacer)) => {
                        let at = began
                            + Duration::from_secs_f64(
                                (k as f64 + p as f64 / publishers as f64) / rate,
                            );
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = pacer.until(p, at) => {}
                        }
                        due = Some(at);
                    }
                    // Closed loop: the next goes when one of this publisher's own comes back.
                    _ => loop {
                        let wake = Rc::clone(&state.borrow().wake[p]);
                        if state.borrow().own_in_flight[p] < in_flight {
                            break;
                        }
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = wake.notified() => {}
                        }
                    },
                }
                if stop.is_cancelled() {
                    return;
                }
                {
                    let mut s = state.borrow_mut();
                    let seq = s.sent[p];
                    s.sent[p] += 1;
                    s.own_in_flight[p] += 1;
                    if s.counting {
                        s.fanout.published(p as u32, seq);
                        let lag = due.map(|d| d.elapsed()).unwrap_or_default();
                        s.pacer_late += u64::from(lag > PACER_LATE);
                    }
                    let sent_ns = s.now_ns();
                    encode(
                        &mut buf,
                        Stamp {
                            publisher: p as u32,
                            seq,
                            sent_ns,
                        },
                    );
                }
                if let Err(failure) = writer.send(&buf).await {
                    failed
                        .borrow_mut()
                        .get_or_insert(format!("publisher {p} failed: {failure}"));
                    return;
                }
                k += 1;
            }
        }));
    }

    // Warmup, then the window.
    let interrupted = tokio::select! {
        () = interrupt.cancelled() => true,
        () = tokio::time::sleep(config.warmup) => false,
    };
    let window = echobench_core::monitor::Bracket::open(echobench_core::monitor::CpuOf::Process);
    let window_start = Instant::now();
    let started_at = std::time::SystemTime::now();
    {
        let mut s = state.borrow_mut();
        s.counting = true;
        s.in_window = true;
        let alive = s.alive.iter().filter(|a| **a).count();
        s.fanout = Fanout::new(u32::try_from(alive).unwrap_or(u32::MAX));
        for p in 0..publishers {
            s.window[p] = (s.sent[p], u64::MAX);
        }
    }
    let interrupted = interrupted
        || tokio::select! {
            () = interrupt.cancelled() => true,
            () = tokio::time::sleep(config.duration) => false,
        };
    stop_publishing.cancel();
    let measured = window_start.elapsed();
    let published = {
        let mut s = state.borrow_mut();
        s.in_window = false;
        let mut published = 0;
        for p in 0..publishers {
            let end = s.sent[p];
            s.window[p].1 = end;
            published += end - s.window[p].0;
        }
        published
    };
    for task in tasks {
        let _ = task.await;
    }
    if let Some(driver) = driver {
        driver.abort();
    }
    let idle_spin = pacer.as_ref().map_or(Duration::ZERO, |p| p.idle_spin());
    if let Some(reason) = failed.borrow_mut().take() {
        return Err(reason);
    }

    // Drain: until every message has reached every subscriber still connected, or the
    // timeout. Checked every millisecond; nothing is sent meanwhile.
    let expected = published * u64::from(subscribers);
    let drain_deadline = Instant::now() + config.timeout;
    let drained = loop {
        if state.borrow().complete(published) {
            break true;
        }
        if Instant::now() >= drain_deadline || interrupt.is_cancelled() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let bracket = window.close();
    let s = state.borrow();
    let delivered: u64 = s.had.iter().sum();
    let summary = BroadcastSummary {
        subscribers,
        publishers: publishers as u32,
        published,
        deliveries_expected: expected,
        delivered,
        missing: expected.saturating_sub(delivered),
        duplicated: s.duplicated,
        out_of_order: s.out_of_order,
        subscribers_dropped: s.dropped,
        malformed: s.malformed,
        arrived_in_window: s.arrived_in_window,
        deliveries_per_s: s.arrived_in_window as f64 / measured.as_secs_f64().max(1e-9),
        drained,
        delivery: Percentiles::of(&s.delivery),
        slowest: Percentiles::of(&s.slowest),
    };
    Ok(Outcome {
        summary,
        pacer_late: s.pacer_late,
        idle_spin,
        delivery: s.delivery.clone(),
        errors: s.errors.clone(),
        measured,
        started_at,
        interrupted,
        bracket,
    })
}

/// What a broadcast run produced.
pub(crate) struct Outcome {
    /// The counts and latencies.
    pub summary: BroadcastSummary,
    /// Open loop: publishes of the window that left late by the client's doing.
    pub pacer_late: u64,
    /// The pacer's busy-waiting with nothing else to do (not the load's CPU).
    pub idle_spin: Duration,
    /// The delivery latency histogram.
    pub delivery: Histogram<u64>,
    /// The errors seen.
    pub errors: ErrorLog,
    /// The measured window.
    pub measured: Duration,
    /// Its wall-clock start.
    pub started_at: std::time::SystemTime,
    /// Cut short by an interrupt.
    pub interrupted: bool,
    /// The process's CPU and the machine's steal over the window and the drain.
    pub bracket: echobench_core::monitor::Bracketed,
}
