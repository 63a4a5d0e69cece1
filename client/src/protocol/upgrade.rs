//! The WebSocket opening handshake, client side (RFC 6455 §4.1): the upgrade request, then the
//! server's 101 read and checked here rather than by tungstenite's handshake, for two reasons.
//! tungstenite reads the response into a 4 KiB buffer and hands that same allocation to the
//! connection as its frame buffer, whatever `read_buffer_size` says, so every open connection
//! kept 4 KiB it never needed (BENCHMARKS.md, "Memory per WebSocket connection"); and each way
//! a server can get the handshake wrong gets a message that names it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::Stream;
use super::http::has_token;
use crate::error::Failure;
use crate::target::Target;

/// The most of a response head read before giving up on it: a real 101 is about 130 bytes.
const MAX_HEAD: usize = 16 * 1024;

/// The most header lines a response head may have.
const MAX_HEADERS: usize = 32;

/// Upgrades `stream` to a WebSocket on `target`'s path, with `config`; a refused or broken
/// handshake is a `HandshakeFailed` saying which.
pub(crate) async fn upgrade(
    target: &Target,
    mut stream: Stream,
    config: WebSocketConfig,
) -> Result<WebSocketStream<Stream>, Failure> {
    let key = generate_key();
    stream
        .write_all(request(target, &key).as_bytes())
        .await
        .map_err(|err| failed(format!("sending the upgrade request: {err}")))?;
    let (head, rest) = read_head(&mut stream).await?;
    check(&head, &key)?;
    Ok(if rest.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Client, Some(config)).await
    } else {
        // Frames the server sent right behind its 101: they are the connection's first bytes.
        WebSocketStream::from_partially_read(stream, rest, Role::Client, Some(config)).await
    })
}

/// The upgrade request for `target` with `key`.
fn request(target: &Target, key: &str) -> String {
    let path = if target.path.is_empty() {
        "/"
    } else {
        &target.path
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        target.host
    )
}

fn failed(detail: String) -> Failure {
    Failure::HandshakeFailed {
        status: None,
        detail,
    }
}

/// Reads the response head (at most [`MAX_HEAD`] bytes), returning it and whatever came after
/// it, each in an allocation of its own size.
async fn read_head(stream: &mut Stream) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        if room == 0 {
            return Err(failed(format!(
                "the response to the upgrade has no end of its head within {MAX_HEAD} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(|err| failed(format!("reading the upgrade response: {err}")))?;
        if n == 0 {
            return Err(failed(if buf.is_empty() {
                "the server closed the connection without answering the upgrade".to_owned()
            } else {
                "the server closed the connection in the middle of its upgrade response".to_owned()
            }));
        }
        // The head ends at the first blank line; only the bytes just read and the three
        // before them can complete one.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + at + 4;
            let rest = buf[end..].to_vec();
            buf.truncate(end);
            return Ok((buf, rest));
        }
    }
}

/// Checks a complete response head against the request made with `key`.
fn check(head: &[u8], key: &str) -> Result<(), Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(failed(
                "the upgrade response's head is incomplete".to_owned(),
            ));
        }
        Err(err) => {
            return Err(failed(format!(
                "the response to the upgrade is not HTTP ({err})"
            )));
        }
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(Failure::HandshakeFailed {
            status: Some(status),
            detail: "the server refused the WebSocket upgrade".to_owned(),
        });
    }
    let raw = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let header =
        |name: &str| raw(name).map(|value| String::from_utf8_lossy(value).trim().to_owned());
    match header("Upgrade") {
        Some(value) if value.eq_ignore_ascii_case("websocket") => {}
        Some(value) => {
            return Err(failed(format!(
                "the 101 response says `Upgrade: {value}`, not `Upgrade: websocket`"
            )));
        }
        None => return Err(failed("the 101 response has no Upgrade header".to_owned())),
    }
    if !raw("Connection").is_some_and(|value| has_token(value, b"upgrade")) {
        let connection = header("Connection").unwrap_or_default();
        return Err(failed(format!(
            "the 101 response's Connection header is `{connection}`, without `Upgrade`"
        )));
    }
    let expected = derive_accept_key(key.as_bytes());
    match header("Sec-WebSocket-Accept") {
        Some(accept) if accept == expected => {}
        Some(accept) => {
            return Err(failed(format!(
                "wrong Sec-WebSocket-Accept `{accept}`: the key sent makes it `{expected}`"
            )));
        }
        None => {
            return Err(failed(
                "the 101 response has no Sec-WebSocket-Accept header".to_owned(),
            ));
        }
    }
    // Nothing was asked for, so nothing may be agreed to (§4.1, items 5 and 6).
    for name in ["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"] {
        if let Some(value) = header(name) {
            return Err(failed(format!(
                "the server agreed to `{name}: {value}`, which the client did not ask for"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455's own example: this key's accept value.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// A refusal's status and what its message must say; `None` for an accepted upgrade.
    type Want = Option<(Option<u16>, &'static str)>;

    fn detail(head: &str) -> Option<(Option<u16>, String)> {
        match check(head.as_bytes(), KEY) {
            Ok(()) => None,
            Err(Failure::HandshakeFailed { status, detail }) => Some((status, detail)),
            Err(other) => panic!("not a handshake failure: {other}"),
        }
    }

    /// Each answer a server can give, and what the client makes of it.
    #[test]
    fn responses() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        let cases: [(String, Want); 9] = [
            (ok.clone(), None),
            (
                ok.replace("Upgrade: websocket", "upgrade: WebSocket")
                    .replace("Connection: Upgrade", "Connection: keep-alive, upgrade"),
                None,
            ),
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
                Some((Some(404), "the server refused the WebSocket upgrade")),
            ),
            (
                ok.replace(ACCEPT, "AAAA"),
                Some((None, "wrong Sec-WebSocket-Accept `AAAA`")),
            ),
            (
                ok.replace(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"), ""),
                Some((None, "no Sec-WebSocket-Accept header")),
            ),
            (
                ok.replace("Upgrade: websocket", "Upgrade: h2c"),
                Some((None, "`Upgrade: h2c`, not `Upgrade: websocket`")),
            ),
            (
                ok.replace("Connection: Upgrade", "Connection: close"),
                Some((None, "Connection header is `close`, without `Upgrade`")),
            ),
            (
                ok.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                ),
                Some((
                    None,
                    "agreed to `Sec-WebSocket-Extensions: permessage-deflate`",
                )),
            ),
            (
                "SSH-2.0-OpenSSH\r\n\r\n".to_owned(),
                Some((None, "not HTTP")),
            ),
        ];
        for (head, want) in cases {
            let got = detail(&head);
            match (&got, want) {
                (None, None) => {}
                (Some((status, detail)), Some((want_status, says))) => {
                    assert_eq!(*status, want_status, "{head:?}");
                    assert!(detail.contains(says), "{head:?}: {detail}");
                }
                _ => panic!("{head:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// The accept value is RFC 6455's for its example key, so `check` is checked against the
    /// standard, not against itself.
    #[test]
    fn the_accept_key_is_the_rfcs() {
        assert_eq!(derive_accept_key(KEY.as_bytes()), ACCEPT);
    }
}
