//! The broadcast relay over real loopback sockets, on both WebSocket servers (`/broadcast`) and
//! on `tcp` with `tcp_relay`: every message reaches every subscriber exactly once, in one global
//! order; a subscriber that joins or leaves mid-run sees exactly the messages published while
//! it was there; a subscriber that stops reading gets the policy (drop: gaps, still connected;
//! disconnect: close 1008 / a closed connection) while the others are served in full.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{STEP, Ws};
use echo_servers::{Fixture, Impl, Policy};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

const WS: [Impl; 2] = [Impl::Tungstenite, Impl::AxumWs];

/// Big enough that a subscriber which stops reading overflows every buffer between it and the
/// relay (the kernel's socket buffers, at most a few MiB here, and the queue) well before the
/// publisher is done.
const LARGE: usize = 64 * 1024;
const FLOOD: usize = 400;

/// One relay subscriber of either kind.
enum Sub {
    Ws(Box<Ws>),
    Tcp(TcpStream),
}

/// What a subscriber read.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Message(Vec<u8>),
    /// WebSocket close code, or `None` for a TCP connection closed.
    Closed(Option<u16>),
}

impl Sub {
    /// Connects to `srv`'s relay; `small_buffer` asks the kernel for the smallest receive
    /// buffer, for a subscriber that will stop reading.
    async fn join(srv: &Fixture, small_buffer: bool) -> Sub {
        let socket = TcpSocket::new_v4().unwrap();
        if small_buffer {
            socket.set_recv_buffer_size(4096).unwrap();
        }
        let stream = socket.connect(srv.addr()).await.unwrap();
        let url = srv.broadcast_url().unwrap();
        if srv.implementation() == Impl::Tcp {
            return Sub::Tcp(stream);
        }
        let connect = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream));
        let (ws, _) = tokio::time::timeout(STEP, connect).await.unwrap().unwrap();
        Sub::Ws(Box::new(ws))
    }

    async fn send(&mut self, payload: &[u8]) {
        match self {
            Sub::Ws(ws) => ws.send(Message::binary(payload.to_vec())).await.unwrap(),
            Sub::Tcp(tcp) => {
                let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
                frame.extend_from_slice(payload);
                tcp.write_all(&frame).await.unwrap();
            }
        }
    }

    async fn next(&mut self) -> Got {
        tokio::time::timeout(STEP, self.read())
            .await
            .expect("timed out waiting for the relay")
    }

    async fn read(&mut self) -> Got {
        match self {
            Sub::Ws(ws) => match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => Got::Message(bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => Got::Closed(frame.map(|f| f.code.into())),
                Some(Ok(other)) => panic!("unexpected {other:?}"),
                Some(Err(err)) => panic!("websocket error: {err}"),
                None => Got::Closed(None),
            },
            Sub::Tcp(tcp) => {
                let mut header = [0u8; 4];
                if tcp.read_exact(&mut header).await.is_err() {
                    return Got::Closed(None);
                }
                let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
                // A subscriber disconnected in the middle of a write gets a cut message.
                match tcp.read_exact(&mut payload).await {
                    Ok(_) => Got::Message(payload),
                    Err(_) => Got::Closed(None),
                }
            }
        }
    }

    /// Publishes `payload` and reads until its own copy comes back, returning what came
    /// before it. Once it is back the relay has queued it for every subscriber.
    async fn round_trip(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        self.send(payload).await;
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Got::Message(m) if m == payload => return before,
                Got::Message(m) => before.push(m),
                Got::Closed(code) => panic!("closed ({code:?}) before its own message"),
            }
        }
    }

    /// Reads `n` messages.
    async fn take(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.next().await {
                Got::Message(m) => got.push(m),
                Got::Closed(code) => panic!("closed ({code:?}) after {} messages", got.len()),
            }
        }
        got
    }
}

async fn relay(implementation: Impl) -> Fixture {
    Fixture::builder(implementation)
        .relay()
        .start()
        .await
        .unwrap()
}

/// `LARGE` bytes whose first 8 are `n`.
fn numbered(n: usize) -> Vec<u8> {
    let mut payload = vec![b'x'; LARGE];
    payload[..8].copy_from_slice(&(n as u64).to_be_bytes());
    payload
}

fn number(payload: &[u8]) -> usize {
    u64::from_be_bytes(payload[..8].try_into().unwrap()) as usize
}

/// Subscribers that joined before anything was published, three of them publishing at once:
/// every subscriber receives every message exactly once, each publisher's in its order, and
/// all of them in the same global order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_every_subscriber_in_one_order() {
    const SUBSCRIBERS: usize = 5;
    const PUBLISHERS: usize = 3;
    const EACH: usize = 200;
    for implementation in [Impl::Tungstenite, Impl::AxumWs, Impl::Tcp] {
        let srv = relay(implementation).await;
        // Joined in turn, each confirmed by its own hello, so every one is subscribed before
        // the first message; the hellos of those who joined later are read past below.
        let mut subs = Vec::new();
        for i in 0..SUBSCRIBERS {
            let mut sub = Sub::join(&srv, false).await;
            assert!(
                sub.round_trip(format!("hello {i}").as_bytes())
                    .await
                    .is_empty()
            );
            subs.push(sub);
        }
        let mut readers = Vec::new();
        for (i, mut sub) in subs.into_iter().enumerate() {
            let later_hellos = SUBSCRIBERS - 1 - i;
            readers.push(tokio::spawn(async move {
                let all = sub.take(later_hellos + PUBLISHERS * EACH).await;
                (sub, all[later_hellos..].to_vec())
            }));
        }
        // Publishers stay connected until every reader is done: closing a socket with unread
        // data resets it, and the server may then lose what it had not read yet.
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let mut publisher = Sub::join(&srv, false).await;
            publishers.push(tokio::spawn(async move {
                for seq in 0..EACH {
                    publisher.send(format!("{p}:{seq}").as_bytes()).await;
                }
                publisher
            }));
        }
        let mut done = Vec::new();
        for publisher in publishers {
            done.push(publisher.await.unwrap());
        }
        let mut orders = Vec::new();
        for reader in readers {
            let (_sub, got) = reader.await.unwrap();
            let texts: Vec<String> = got
                .iter()
                .map(|m| String::from_utf8(m.clone()).unwrap())
                .collect();
            for p in 0..PUBLISHERS {
                let mine: Vec<String> = texts
                    .iter()
                    .filter(|t| t.starts_with(&format!("{p}:")))
                    .cloned()
                    .collect();
                let expected: Vec<String> = (0..EACH).map(|seq| format!("{p}:{seq}")).collect();
                assert_eq!(mine, expected, "{implementation}: publisher {p}");
            }
            orders.push(texts);
        }
        assert!(
            orders.windows(2).all(|pair| pair[0] == pair[1]),
            "{implementation}: subscribers saw different orders"
        );
        srv.shutdown().await.unwrap();
    }
}

/// A subscriber that joins mid-run receives exactly the messages published after its join
/// (its own hello marks the point), and after it leaves the others are still served in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_mid_run() {
    for implementation in [Impl::Tungstenite, Impl::AxumWs, Impl::Tcp] {
        let srv = relay(implementation).await;
        let mut first = Sub::join(&srv, false).await;
        first.round_trip(b"first joined").await;
        for n in 0..10 {
            first.round_trip(format!("before {n}").as_bytes()).await;
        }
        let mut late = Sub::join(&srv, false).await;
        assert!(late.round_trip(b"late joined").await.is_empty());
        assert_eq!(first.take(1).await, [b"late joined".to_vec()]);
        for n in 0..10 {
            let text = format!("during {n}");
            assert!(first.round_trip(text.as_bytes()).await.is_empty());
            assert_eq!(late.take(1).await, [text.into_bytes()], "{implementation}");
        }
        drop(late);
        for n in 0..10 {
            assert!(
                first
                    .round_trip(format!("after {n}").as_bytes())
                    .await
                    .is_empty(),
                "{implementation}"
            );
        }
        srv.shutdown().await.unwrap();
    }
}

/// A subscriber that stops reading while a publisher publishes (one message at a time, so the
/// publisher's own queue never fills), then reads again: it gets, in order, what fitted in the
/// socket buffers and its queue (an unbroken prefix with `disconnect`, perhaps with gaps with
/// `drop`), then with `drop` the next message published (it stayed subscribed), with
/// `disconnect` close 1008 (TCP: the connection closed); the publisher is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_gets_the_policy() {
    for implementation in [Impl::Tungstenite, Impl::AxumWs, Impl::Tcp] {
        for policy in [Policy::Drop, Policy::Disconnect] {
            let what = format!("{implementation} {}", policy.name());
            let srv = Fixture::builder(implementation)
                .relay()
                .broadcast_policy(policy)
                .broadcast_queue(16)
                .start()
                .await
                .unwrap();
            let mut slow = Sub::join(&srv, true).await;
            assert!(slow.round_trip(b"slow joined").await.is_empty());
            let mut publisher = Sub::join(&srv, false).await;
            publisher.round_trip(b"publisher joined").await;
            for n in 0..FLOOD {
                assert!(
                    publisher.round_trip(&numbered(n)).await.is_empty(),
                    "{what}"
                );
            }
            assert!(
                slow.take(1).await == [b"publisher joined".to_vec()],
                "{what}"
            );
            let (got, ending) = match policy {
                Policy::Drop => {
                    // Still subscribed: once it has caught up, the next marker published
                    // reaches it. Markers go out one at a time until the reader has one.
                    let reader = tokio::spawn(async move {
                        let mut got = Vec::new();
                        loop {
                            match slow.next().await {
                                Got::Message(m) if m.starts_with(b"marker") => return got,
                                Got::Message(m) => got.push(number(&m)),
                                Got::Closed(code) => panic!("closed {code:?}"),
                            }
                        }
                    });
                    let mut markers = 0;
                    while !reader.is_finished() {
                        assert!(markers < 100_000, "{what}: no marker arrived");
                        publisher
                            .round_trip(format!("marker {markers}").as_bytes())
                            .await;
                        markers += 1;
                    }
                    (reader.await.unwrap(), None)
                }
                Policy::Disconnect => {
                    let mut got = Vec::new();
                    loop {
                        match slow.next().await {
                            Got::Message(m) => got.push(number(&m)),
                            Got::Closed(code) => break (got, Some(code)),
                        }
                    }
                }
            };
            // Disconnect: what fitted in the buffers and the queue before it filled, in order,
            // then the close. Drop: in order and none twice, starting with the first, but not
            // necessarily unbroken: the kernel frees send buffer as the peer's socket acknowledges
            // data, and a message published after such a drain is queued after a gap.
            let in_order = got.first() == Some(&0) && got.windows(2).all(|w| w[0] < w[1]);
            assert!(
                in_order,
                "{what}: out of order or not from the first: {got:?}"
            );
            if policy == Policy::Disconnect {
                let expected: Vec<usize> = (0..got.len()).collect();
                assert!(got == expected, "{what}: not an unbroken prefix");
            }
            assert!(
                !got.is_empty() && got.len() < FLOOD,
                "{what}: kept {}",
                got.len()
            );
            if policy == Policy::Disconnect {
                let expected = if implementation == Impl::Tcp {
                    None
                } else {
                    Some(1008)
                };
                assert_eq!(ending, Some(expected), "{what}");
            }
            assert!(
                publisher.round_trip(b"still here").await.is_empty(),
                "{what}"
            );
            srv.shutdown().await.unwrap();
        }
    }
}

/// The relay refuses what is not a subscriber: HTTP servers have no broadcast URL (and no
/// relay to ask for), a TCP
/// frame over the limit closes that connection only, and tcp_relay on a WebSocket server is
/// refused at start.
#[tokio::test]
async fn what_is_not_a_relay() {
    let http = Fixture::builder(Impl::Hyper).start().await.unwrap();
    assert_eq!(http.broadcast_url(), None);
    http.shutdown().await.unwrap();
    let err = Fixture::builder(Impl::Axum)
        .relay()
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "axum is an HTTP server and has no broadcast relay; use a WebSocket or tcp implementation"
    );
    for implementation in WS {
        let err = Fixture::builder(implementation)
            .tcp_relay()
            .start()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("tcp_relay is for Impl::Tcp; {implementation} relays on /broadcast without it")
        );
    }
    let srv = Fixture::builder(Impl::Tcp)
        .tcp_relay()
        .max_message(1024)
        .start()
        .await
        .unwrap();
    let mut good = Sub::join(&srv, false).await;
    good.round_trip(b"joined").await;
    let mut bad = TcpStream::connect(srv.addr()).await.unwrap();
    bad.write_all(&2048u32.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, bad.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(good.round_trip(b"still served").await.is_empty());
    srv.shutdown().await.unwrap();
}
