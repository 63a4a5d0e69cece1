"""python-websockets-client: a closed-loop WebSocket round-trip load client on the `websockets`
package, the classic asyncio benchmarker design, for cross-checking echo-client. N coroutines
each connect, do R round trips (send a unique message, await its echo, check it byte for
byte, record the time), close, and are replaced at once. Prints one JSON line on stdout.

Semantics follow echo-client so the two can be compared: everything that completes (or fails)
after the warmup and before the deadline is counted; at the deadline every connection is
dropped and round trips still in flight are neither counted nor errors. Messages are
echo-client's: a filler of printable ASCII whose first 16 bytes are the round trip's id in
hex (its low digits when shorter), so a stale or corrupted echo never matches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import platform
import re
import signal
import sys
import time
from importlib.metadata import version
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789"
ID_DIGITS = 16


def seconds(allow_zero: bool):
    def parse(text: str) -> float:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s?", text)
        value = float(match.group(1)) if match else -1.0
        if value > 0 or (allow_zero and value == 0):
            return value
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")

    return parse


def count(minimum: int):
    def parse(text: str) -> int:
        if text.isdigit() and int(text) >= minimum:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer of at least {minimum}")

    return parse


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Closed-loop WebSocket round-trip load client (websockets). Prints one JSON "
        "line: tool, round_trips, seconds, round_trips_per_s, errors, p50_us, p99_us, max_us.",
        epilog="Exit status: 0 after the report; 130 on SIGINT/SIGTERM, after a report of what "
        "ran; 2 for bad flags.",
    )
    parser.add_argument("url", help="ws://HOST:PORT/PATH (loopback only unless --allow-remote)")
    parser.add_argument(
        "-c",
        "--connections",
        type=count(1),
        default=64,
        metavar="N",
        help="virtual clients, each with one connection open (default: 64)",
    )
    parser.add_argument(
        "-r",
        "--roundtrips",
        type=count(0),
        default=0,
        metavar="R",
        help="round trips per connection before it is closed and replaced; "
        "0 keeps it for the whole run (default: 0)",
    )
    parser.add_argument(
        "-d",
        "--duration",
        type=seconds(False),
        default=10.0,
        metavar="SECONDS",
        help="measured window; at its end every connection is dropped and round "
        "trips in flight are not counted (default: 10)",
    )
    parser.add_argument(
        "-s",
        "--size",
        type=count(1),
        default=32,
        metavar="BYTES",
        help="message size (default: 32)",
    )
    parser.add_argument(
        "--warmup",
        type=seconds(True),
        default=1.0,
        metavar="SECONDS",
        help="load before the window; its samples are discarded (default: 1)",
    )
    parser.add_argument(
        "--ws-mode",
        choices=("binary", "text"),
        default="binary",
        help="message type (default: binary)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds(False),
        default=10.0,
        metavar="SECONDS",
        help="longest wait for an echo or a connection; then it is an error and "
        "the connection is replaced (default: 10)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a target outside loopback"
    )
    args = parser.parse_args()
    parts = urlsplit(args.url)
    if parts.scheme != "ws" or not parts.hostname:
        parser.error(f"{args.url!r}: expected a ws://HOST:PORT/PATH URL")
    if not args.allow_remote and not is_loopback(parts.hostname):
        parser.error(
            f"{parts.hostname} is not a loopback address; pass --allow-remote for a "
            "server you may load-test"
        )
    return args


def stamp(buf: bytearray, id_: int) -> None:
    """Writes `id_` in lowercase hex over the first min(16, len) bytes."""
    digits = min(len(buf), ID_DIGITS)
    buf[:digits] = (b"%016x" % (id_ & 0xFFFF_FFFF_FFFF_FFFF))[ID_DIGITS - digits :]


def mismatch(sent: bytes, echo: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(sent, echo, strict=False)) if a != b), None)
    if at is None:
        return f"echo has {len(echo)} bytes, the message had {len(sent)}"
    return (
        f"echo differs from the message at byte {at} ({len(sent)} bytes sent, {len(echo)} echoed)"
    )


def nearest_rank(ordered: list[int], p: float) -> int:
    """The p-quantile by nearest rank: the smallest sample with at least a fraction p of all
    samples at or below it (no interpolation), index ceil(p * n) - 1 of the sorted list."""
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


class Run:
    """The clock and the counters every virtual client shares (all on one event loop)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.perf_counter_ns()
        self.warmup_end = self.start + int(args.warmup * 1e9)
        self.deadline = self.warmup_end + int(args.duration * 1e9)
        self.samples: list[int] = []  # round-trip times in ns, measured window only
        self.errors = 0
        self.reported = 0
        self.stopped = False
        self.ids = itertools.count()

    def in_window(self, t: int) -> bool:
        return self.warmup_end <= t <= self.deadline

    def error(self, what: str) -> None:
        if self.stopped:
            return
        if self.in_window(time.perf_counter_ns()):
            self.errors += 1
        if self.reported < 3:
            self.reported += 1
            print(f"websockets-client: {what}", file=sys.stderr)

    def report(self) -> dict:
        """Freezes the numbers: nothing that completes after this call counts."""
        self.stopped = True
        now = min(time.perf_counter_ns(), self.deadline)
        measured = max(0, now - self.warmup_end) / 1e9
        ordered = sorted(self.samples)
        us = lambda ns: round(ns / 1e3, 3)  # noqa: E731
        return {
            "tool": "python-websockets-client",
            "round_trips": len(ordered),
            "seconds": round(measured, 3),
            "round_trips_per_s": round(len(ordered) / measured, 3) if measured > 0 else 0.0,
            "errors": self.errors,
            "p50_us": us(nearest_rank(ordered, 0.50)) if ordered else None,
            "p99_us": us(nearest_rank(ordered, 0.99)) if ordered else None,
            "max_us": us(ordered[-1]) if ordered else None,
            "library": f"websockets {version('websockets')}",
            "runtime": f"python {platform.python_version()}",
            "url": self.args.url,
            "connections": self.args.connections,
            "roundtrips": self.args.roundtrips,
            "size": self.args.size,
            "ws_mode": self.args.ws_mode,
            "warmup_s": self.args.warmup,
        }


async def virtual_client(run: Run) -> None:
    args = run.args
    text = args.ws_mode == "text"
    payload = bytearray(FILLER * (args.size // len(FILLER) + 1))[: args.size]
    backoff = 0.001
    while True:
        try:
            ws = await connect(
                args.url,
                compression=None,
                ping_interval=None,
                max_size=None,
                open_timeout=args.timeout,
                close_timeout=args.timeout,
            )
        except Exception as err:  # noqa: BLE001 - OSError, InvalidHandshake, TimeoutError, ...
            run.error(f"connect: {err!r}")
            # Do not spin against a server that refuses: 1 ms, doubling up to 100 ms.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.1)
            continue
        backoff = 0.001
        try:
            n = 0
            while args.roundtrips == 0 or n < args.roundtrips:
                n += 1
                stamp(payload, next(run.ids))
                message = payload.decode("ascii") if text else bytes(payload)
                sent = time.perf_counter_ns()
                await ws.send(message)
                async with asyncio.timeout(args.timeout):
                    echo = await ws.recv()
                done = time.perf_counter_ns()
                if echo != message:
                    got = echo.encode() if isinstance(echo, str) else echo
                    kind = "" if isinstance(echo, type(message)) else " (wrong message type)"
                    run.error(mismatch(bytes(payload), got) + kind)
                    break
                if not run.stopped and run.in_window(done):
                    run.samples.append(done - sent)
        except TimeoutError:
            run.error(f"no echo within {args.timeout} s")
        except ConnectionClosed as err:
            run.error(f"connection closed: {err}")
        except Exception as err:  # noqa: BLE001 - keep N clients alive whatever happened
            run.error(repr(err))
        finally:
            # A close handshake, bounded by close_timeout (cancelled at the deadline).
            await ws.close()


async def main() -> int:
    args = parse_args()
    run = Run(args)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    tasks = [asyncio.create_task(virtual_client(run)) for _ in range(args.connections)]
    with contextlib.suppress(TimeoutError):  # the deadline, the usual end
        await asyncio.wait_for(interrupted.wait(), (run.deadline - run.start) / 1e9)
    print(json.dumps(run.report()), flush=True)
    # Dropping the connections abandons whatever is in flight; closing is bounded too.
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=2)
    return 130 if interrupted.is_set() else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
