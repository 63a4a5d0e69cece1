//! In-process round trip per implementation over loopback, at 32 B and 4 KiB: a blocking client
//! on the bench thread talks to a [`BlockingFixture`] on its own thread. Ids are
//! `roundtrip/<impl>/<bytes>`; throughput is the payload size (sent once, received once).
//!
//! This measures one request at a time end to end (both sides' syscalls, wake-ups and framing),
//! so it tracks per-round-trip cost; load with many connections is the harness's job.

// A benchmark whose echo breaks must stop loudly rather than time garbage.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use echo_servers::{BlockingFixture, Fixture, Impl, Protocol};
use tokio_tungstenite::tungstenite::{self, Message};

const SIZES: [usize; 2] = [32, 4096];

/// A connected blocking client for one protocol, with its buffers allocated once.
enum Client {
    Http {
        stream: TcpStream,
        request: Vec<u8>,
        buffer: Vec<u8>,
    },
    Ws {
        socket: Box<tungstenite::WebSocket<TcpStream>>,
        message: Vec<u8>,
    },
    Tcp {
        stream: TcpStream,
        message: Vec<u8>,
        buffer: Vec<u8>,
    },
}

impl Client {
    fn connect(srv: &BlockingFixture, size: usize) -> Client {
        let message = vec![b'x'; size];
        let stream = TcpStream::connect(srv.addr()).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        match srv.implementation().protocol() {
            Protocol::Http => {
                let mut request =
                    format!("POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n\r\n")
                        .into_bytes();
                request.extend_from_slice(&message);
                Client::Http {
                    stream,
                    request,
                    buffer: vec![0; 64 * 1024],
                }
            }
            Protocol::WebSocket => {
                let (socket, _) = tungstenite::client(srv.url(), stream).expect("handshake");
                Client::Ws {
                    socket: Box::new(socket),
                    message,
                }
            }
            Protocol::Tcp => Client::Tcp {
                stream,
                buffer: vec![0; size],
                message,
            },
        }
    }

    /// One request and its complete, checked echo.
    fn round_trip(&mut self) {
        match self {
            Client::Http {
                stream,
                request,
                buffer,
            } => {
                stream.write_all(request).expect("write");
                let mut filled = 0;
                loop {
                    let n = stream.read(&mut buffer[filled..]).expect("read");
                    assert!(n > 0, "server closed");
                    filled += n;
                    let mut headers = [httparse::EMPTY_HEADER; 16];
                    let mut response = httparse::Response::new(&mut headers);
                    if let Ok(httparse::Status::Complete(head)) = response.parse(&buffer[..filled])
                    {
                        let length = response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                            .expect("content-length");
                        if filled >= head + length {
                            assert_eq!(response.code, Some(200));
                            black_box(&buffer[head..head + length]);
                            return;
                        }
                    }
                }
            }
            Client::Ws { socket, message } => {
                socket.send(Message::binary(message.clone())).expect("send");
                match socket.read().expect("read") {
                    Message::Binary(echo) => assert_eq!(echo.len(), message.len()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            Client::Tcp {
                stream,
                message,
                buffer,
            } => {
                stream.write_all(message).expect("write");
                stream.read_exact(buffer).expect("read");
                black_box(&buffer);
            }
        }
    }
}

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip");
    for imp in Impl::ALL {
        let srv = Fixture::builder(imp)
            .start_blocking()
            .expect("start server");
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut client = Client::connect(&srv, size);
            group.bench_with_input(BenchmarkId::new(imp.name(), size), &size, |b, _| {
                b.iter(|| client.round_trip());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
