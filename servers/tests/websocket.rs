//! WebSocket behaviour of the `tungstenite` and `axum-ws` servers over real loopback sockets:
//! echo at the length-encoding edges, fragmentation, control frames, and the close code for
//! every kind of protocol violation. Every case runs against both servers.

// Helpers outside #[test] functions fail the test by panicking, like assertions do.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{SIZES, STEP, Ws, payload, ws_connect, ws_next};
use echo_servers::{Fixture, Impl};
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

const WS: [Impl; 2] = [Impl::Tungstenite, Impl::AxumWs];

/// Sends `frames` and returns the code of the close frame the server answers with.
async fn close_code_after(ws: &mut Ws, frames: Vec<Frame>) -> u16 {
    for frame in frames {
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    loop {
        match ws_next(ws).await {
            Some(Message::Close(Some(frame))) => return frame.code.into(),
            Some(Message::Close(None)) => panic!("close frame without a code"),
            Some(_) => {}
            None => panic!("the server dropped the connection without a close frame"),
        }
    }
}

/// Reads the raw TCP stream under `ws` to its end: `Ok(n)` once the server has closed the
/// connection with FIN after `n` more bytes, an error if it reset the connection.
async fn tcp_rest(ws: &mut Ws) -> std::io::Result<usize> {
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("expected a plain TCP stream");
    };
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("the server did not close the TCP connection"))
}

/// Any frame, valid or not: opcode, FIN bit and payload as given (the client masks it).
fn frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Frame {
    let header = FrameHeader {
        is_final: fin,
        opcode,
        ..FrameHeader::default()
    };
    Frame::from_payload(header, Bytes::copy_from_slice(payload))
}

/// Text is echoed as text and binary as binary, at every payload size, with the library's
/// read buffer and with the smallest one `--ws-read-buffer` allows (messages then span many
/// reads).
#[tokio::test]
async fn echo_text_and_binary_at_every_size() {
    for imp in WS {
        for read_buffer in [None, Some(echo_servers::options::MIN_WS_READ_BUFFER)] {
            let builder = Fixture::builder(imp);
            let builder = match read_buffer {
                Some(bytes) => builder.ws_read_buffer(bytes),
                None => builder,
            };
            let srv = builder.start().await.unwrap();
            let mut ws = ws_connect(&srv.url()).await;
            for size in SIZES {
                let body = payload(size, 7);
                let text = Message::text(String::from_utf8(body.clone()).unwrap());
                ws.send(text.clone()).await.unwrap();
                assert_eq!(
                    ws_next(&mut ws).await,
                    Some(text),
                    "{imp} {read_buffer:?} text {size}"
                );
                let binary = Message::binary(body);
                ws.send(binary.clone()).await.unwrap();
                assert_eq!(
                    ws_next(&mut ws).await,
                    Some(binary),
                    "{imp} {read_buffer:?} binary {size}"
                );
            }
        }
    }
}

/// Both `/ws` and `/` are WebSocket endpoints; other paths are refused with 404.
#[tokio::test]
async fn endpoints() {
    for imp in WS {
        let srv = Fixture::start(imp).await.unwrap();
        let root = format!("ws://{}/", srv.addr());
        let mut ws = ws_connect(&root).await;
        ws.send(Message::text("root")).await.unwrap();
        assert_eq!(ws_next(&mut ws).await, Some(Message::text("root")), "{imp}");
        let other = format!("ws://{}/elsewhere", srv.addr());
        match tokio_tungstenite::connect_async(&other).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{imp}");
            }
            other => panic!("{imp}: expected a 404 for /elsewhere, got {other:?}"),
        }
    }
}

/// A message sent in several frames comes back as one message of the first frame's kind.
#[tokio::test]
async fn fragmented_messages_are_reassembled() {
    for imp in WS {
        let srv = Fixture::start(imp).await.unwrap();
        let mut ws = ws_connect(&srv.url()).await;
        let parts = [
            frame(OpCode::Data(Data::Text), false, "grüß ".as_bytes()),
            // A ping between fragments is allowed and must be answered.
            Frame::ping(Bytes::from_static(b"mid")),
            frame(OpCode::Data(Data::Continue), false, "日本".as_bytes()),
            frame(OpCode::Data(Data::Continue), true, b"!"),
        ];
        for part in parts {
            ws.send(Message::Frame(part)).await.unwrap();
        }
        assert_eq!(
            ws_next(&mut ws).await,
            Some(Message::Pong(Bytes::from_static(b"mid"))),
            "{imp}"
        );
        assert_eq!(
            ws_next(&mut ws).await,
            Some(Message::text("grüß 日本!")),
            "{imp}"
        );

        for part in [
            frame(OpCode::Data(Data::Binary), false, &[0, 1, 2]),
            frame(OpCode::Data(Data::Continue), true, &[3, 255]),
        ] {
            ws.send(Message::Frame(part)).await.unwrap();
        }
        assert_eq!(
            ws_next(&mut ws).await,
            Some(Message::binary(vec![0, 1, 2, 3, 255])),
            "{imp}"
        );
    }
}

/// A ping is answered with a pong carrying the same payload.
#[tokio::test]
async fn ping_gets_pong() {
    for imp in WS {
        let srv = Fixture::start(imp).await.unwrap();
        let mut ws = ws_connect(&srv.url()).await;
        ws.send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        assert_eq!(
            ws_next(&mut ws).await,
            Some(Message::Pong(Bytes::from_static(b"are you there"))),
            "{imp}"
        );
    }
}

/// The close handshake is answered with the peer's own code and the connection then ends.
#[tokio::test]
async fn close_is_answered_with_the_peers_code() {
    for imp in WS {
        let srv = Fixture::start(imp).await.unwrap();
        for code in [1000u16, 1001, 3000, 4000, 4999] {
            let mut ws = ws_connect(&srv.url()).await;
            ws.send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
            match ws_next(&mut ws).await {
                Some(Message::Close(Some(frame))) => {
                    assert_eq!(u16::from(frame.code), code, "{imp}");
                }
                other => panic!("{imp}: expected close {code}, got {other:?}"),
            }
            assert_eq!(
                ws_next(&mut ws).await,
                None,
                "{imp}: connection must end after close"
            );
        }
    }
}

/// Every violation gets its close code: 1007 for bad UTF-8, 1009 for size, 1002 otherwise.
#[tokio::test]
async fn violations_get_close_codes() {
    let big = payload(700, 0);
    let cases: Vec<(&str, Vec<Frame>, u16)> = vec![
        (
            "invalid UTF-8 text",
            vec![frame(OpCode::Data(Data::Text), true, &[b'a', 0xff, 0xfe])],
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            vec![
                frame(OpCode::Data(Data::Text), false, &[0xe6, 0x97]),
                frame(OpCode::Data(Data::Continue), true, b"x"),
            ],
            1007,
        ),
        (
            "message over the limit",
            vec![frame(OpCode::Data(Data::Binary), true, &payload(1025, 0))],
            1009,
        ),
        (
            "fragments adding up over the limit",
            vec![
                frame(OpCode::Data(Data::Binary), false, &big),
                frame(OpCode::Data(Data::Continue), true, &big),
            ],
            1009,
        ),
        (
            "reserved data opcode",
            vec![frame(OpCode::Data(Data::Reserved(3)), true, b"x")],
            1002,
        ),
        (
            "reserved control opcode",
            vec![frame(OpCode::Control(Control::Reserved(11)), true, b"")],
            1002,
        ),
        (
            "continuation without a start",
            vec![frame(OpCode::Data(Data::Continue), true, b"x")],
            1002,
        ),
        (
            "new message inside a fragmented one",
            vec![
                frame(OpCode::Data(Data::Text), false, b"a"),
                frame(OpCode::Data(Data::Text), true, b"b"),
            ],
            1002,
        ),
        (
            "fragmented ping",
            vec![{
                let mut ping = Frame::ping(Bytes::from_static(b"x"));
                ping.header_mut().is_final = false;
                ping
            }],
            1002,
        ),
        (
            "RSV1 without an extension",
            vec![{
                let mut f = frame(OpCode::Data(Data::Text), true, b"x");
                f.header_mut().rsv1 = true;
                f
            }],
            1002,
        ),
        (
            "close code 999",
            vec![Frame::close(Some(CloseFrame {
                code: CloseCode::from(999),
                reason: "".into(),
            }))],
            1002,
        ),
    ];
    for imp in WS {
        let srv = Fixture::builder(imp)
            .max_message(1024)
            .start()
            .await
            .unwrap();
        for (name, frames, code) in &cases {
            let mut ws = ws_connect(&srv.url()).await;
            assert_eq!(
                close_code_after(&mut ws, frames.clone()).await,
                *code,
                "{imp}: {name}"
            );
        }
    }
}

/// After its close frame the server ends the TCP connection itself, with FIN, even though the
/// client never answers: the Autobahn TestSuite counts a close as clean only if the server drops
/// TCP (RFC 6455 section 7.1.1), whether the client or a protocol violation started the close.
#[tokio::test]
async fn server_ends_tcp_after_its_close_frame() {
    let cases: Vec<(&str, Vec<Frame>, u16)> = vec![
        (
            "close from the client",
            vec![Frame::close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))],
            1000,
        ),
        (
            "invalid UTF-8 text",
            vec![frame(
                OpCode::Data(Data::Text),
                true,
                &[0xce, 0xba, 0xed, 0xa0, 0x80],
            )],
            1007,
        ),
        (
            "message over the limit",
            vec![frame(OpCode::Data(Data::Binary), true, &payload(1025, 0))],
            1009,
        ),
        (
            "reserved control opcode",
            vec![frame(OpCode::Control(Control::Reserved(11)), true, b"")],
            1002,
        ),
    ];
    for imp in WS {
        let srv = Fixture::builder(imp)
            .max_message(1024)
            .start()
            .await
            .unwrap();
        for (name, frames, code) in &cases {
            let mut ws = ws_connect(&srv.url()).await;
            assert_eq!(
                close_code_after(&mut ws, frames.clone()).await,
                *code,
                "{imp}: {name}"
            );
            match tcp_rest(&mut ws).await {
                Ok(0) => {}
                other => {
                    panic!("{imp}: {name}: expected FIN right after the close frame, got {other:?}")
                }
            }
        }
    }
}
