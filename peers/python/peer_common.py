"""What every Python peer server shares: flags, the ready line, stop signals and the HTTP echo
semantics that do not depend on the framework (JSON re-serialization, status codes, bodies).

Behaviour follows the reference `echo-server` (README.md at the repository root), so the
harness can start a peer exactly like one of ours: one `listening URL` line on stdout once
ready, logs on stderr only, exit 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys

#: Largest HTTP body or WebSocket message, as in the reference servers.
MAX_MESSAGE = 16 * 1024 * 1024

#: Listen backlog. asyncio asks for 100 and aiohttp for 128, which overflow when hundreds of
#: clients connect at once; every dropped SYN then costs a client a 1 s retransmit that would
#: be reported as server latency. The reference servers ask for 4096 for the same reason.
BACKLOG = 4096

#: The body of `GET /`.
INDEX_BODY = b"echobench echo server: POST /echo echoes the body\n"

#: The `Content-Type` of an echo when the request has none.
DEFAULT_CONTENT_TYPE = "application/octet-stream"

#: The `Content-Type` of every plain-text answer.
TEXT = "text/plain; charset=utf-8"


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` into `(host, port)`."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:0; port 0 picks a free one)"
        )
    return host, int(port)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def server_parser(description: str) -> argparse.ArgumentParser:
    """The flags every peer server takes: `--addr`, `--max-message`, `--cert` and `--key`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--addr",
        type=parse_addr,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="where to listen; port 0 picks a free one (default: 127.0.0.1:0)",
    )
    parser.add_argument(
        "--max-message",
        type=positive_int,
        default=MAX_MESSAGE,
        metavar="BYTES",
        help=f"largest HTTP body (413 beyond) or WebSocket message (close 1009 beyond) "
        f"(default: {MAX_MESSAGE})",
    )
    parser.add_argument(
        "--cert",
        metavar="FILE",
        help="serve TLS (https://, wss://) with this PEM certificate chain (needs --key)",
    )
    parser.add_argument("--key", metavar="FILE", help="the PEM private key of --cert")
    return parser


def server_tls(parser: argparse.ArgumentParser, args) -> ssl.SSLContext | None:
    """The server's TLS context from `--cert` and `--key` (TLS 1.2 and 1.3, ALPN http/1.1 as
    the reference servers offer), or None for plaintext. One flag without the other is a usage
    error (exit 2); files that cannot be read or do not fit together exit 1 with one line."""
    if args.cert is None and args.key is None:
        return None
    if args.cert is None or args.key is None:
        parser.error("--cert and --key go together: give both to serve TLS, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as err:
        raise SystemExit(
            f"Error: cannot use --cert {args.cert} with --key {args.key}: {err}"
        ) from None
    return context


def setup_logging() -> None:
    """Warnings and errors on stderr; stdout carries only the ready line."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def url_of(scheme: str, sockname: tuple, path: str) -> str:
    """`scheme://host:port/path` for a bound socket's name, with brackets around IPv6."""
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def announce(scheme: str, sockname: tuple, path: str) -> None:
    """Prints the one ready line, flushed so that a reader on a pipe sees it at once."""
    print(f"listening {url_of(scheme, sockname, path)}", flush=True)


def stop_signal() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (call from inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def reserialize_json(body: bytes) -> tuple[int, bytes]:
    """`POST /json`: the body parsed and written back compactly, as `(status, body)`.

    Strict like serde_json in the reference servers: the body must be UTF-8 without a BOM, and
    NaN/Infinity (which Python's json would accept) are refused. Key order is kept as sent.
    """
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        # A lone surrogate escape ("\ud800") parses but cannot be encoded: refused too.
        return 200, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except (ValueError, RecursionError) as err:
        return 400, json.dumps({"error": f"invalid JSON: {err}"}, separators=(",", ":")).encode()


def status_code(code: str) -> int | None:
    """`GET /status/{code}`: the status to answer, or None when not an integer in 200..=599."""
    if code.isascii() and code.isdigit() and len(code) <= 5 and 200 <= int(code) <= 599:
        return int(code)
    return None


def bad_status_body(code: str) -> bytes:
    return f"`{code}` is not a status code between 200 and 599\n".encode()


def too_large_body(limit: int) -> bytes:
    return f"request body exceeds the limit of {limit} bytes\n".encode()
