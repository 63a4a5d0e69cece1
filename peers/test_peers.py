"""End-to-end tests of the peers: every server and client started through run.sh, exactly as
the harness starts them, and checked with real requests on loopback.

Runs with the system python3 and the standard library only (`python3 -m unittest
peers/test_peers.py` from the repository root); it runs peers/install.sh first, which is a
no-op when everything is installed. No sleeps: every wait is for an event, with a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
from collections.abc import Callable
from dataclasses import dataclass, field

PEERS = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(PEERS, "run.sh")
INSTALL = os.path.join(PEERS, "install.sh")
PREFIX = os.environ.get("ECHOBENCH_PEERS_PREFIX") or os.path.join(
    os.path.dirname(PEERS), "target", "peers"
)

#: Longest wait for a ready line (gunicorn boots a worker first) and for an exit after SIGTERM.
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 5.0
#: Longest wait for one answer on a socket.
IO_TIMEOUT_S = 5.0

INDEX_BODY = b"echobench echo server: POST /echo echoes the body\n"
TEXT = "text/plain; charset=utf-8"
LIMIT = 16 * 1024 * 1024


def setUpModule() -> None:  # noqa: N802 - unittest's name
    done = subprocess.run([INSTALL], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"peers/install.sh failed:\n{done.stdout}{done.stderr}")


# --- starting and stopping peers -------------------------------------------------------------


class Peer:
    """A peer server started through run.sh on port 0, with its ready line read."""

    def __init__(self, test: unittest.TestCase, name: str, *args: str) -> None:
        self.test = test
        self.name = name
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the cleanup
        # A session of its own, so that a failed test can end the peer and its children.
        self.proc = subprocess.Popen(
            [RUN, name, "--addr", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        test.addCleanup(self._kill)
        line = read_line(self.proc.stdout, READY_TIMEOUT_S)
        test.assertRegex(
            line,
            r"^listening (http|ws)://127\.0\.0\.1:\d+/(echo|ws)\n$",
            f"{name}: no ready line within {READY_TIMEOUT_S} s; stderr:\n{self.log()}",
        )
        self.url = line.split()[1]
        self.port = int(self.url.split(":")[2].split("/")[0])

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self, signalled: bool = False) -> None:
        """SIGTERM (unless the test has `signalled` it already), then exit code 0 within 5 s
        and nothing more on stdout. A second SIGTERM is not sent to a peer already shutting
        down: once its event loop has closed, Python has put the default action back, and the
        signal would kill it on its way out."""
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.test.fail(f"{self.name} still running {EXIT_TIMEOUT_S} s after SIGTERM")
        self.test.assertEqual(code, 0, f"{self.name} exit code; stderr:\n{self.log()}")
        self.test.assertEqual(
            self.proc.stdout.read(), b"", f"{self.name}: more than one line on stdout"
        )

    def _kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(EXIT_TIMEOUT_S)
        self.proc.stdout.close()
        self.stderr.close()


def read_line(pipe, timeout: float) -> str:
    """One line from a pipe, or what arrived before EOF or the deadline."""
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(pipe.fileno(), 1)  # byte by byte: nothing past the line is consumed
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def run_client(name: str, url: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs a peer client to completion (bounded) and parses its one JSON line."""
    done = subprocess.run([RUN, name, url, *args], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 1:
        raise AssertionError(
            f"{name} exit {done.returncode}, stdout {done.stdout!r}, stderr:\n{done.stderr}"
        )
    return done, json.loads(lines[0])


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class HttpCase:
    what: str
    method: str
    path: str
    status: int
    body: bytes | Callable[[bytes], bool] | None = b""
    request_body: bytes | list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    allow: str | None = None


BINARY = bytes(range(256)) * 3


def is_json_error(body: bytes) -> bool:
    value = json.loads(body)
    return isinstance(value, dict) and value["error"].startswith("invalid JSON")


HTTP_CASES = [
    HttpCase(
        "echo keeps the body and its content type",
        "POST",
        "/echo",
        200,
        BINARY,
        BINARY,
        {"Content-Type": "text/x-peer; charset=latin1"},
        "text/x-peer; charset=latin1",
    ),
    HttpCase(
        "echo defaults the content type",
        "POST",
        "/echo",
        200,
        b"abc",
        b"abc",
        content_type="application/octet-stream",
    ),
    HttpCase("echo of an empty body", "POST", "/echo", 200, b"", b""),
    HttpCase(
        "echo of a chunked body",
        "POST",
        "/echo",
        200,
        b"chunked body",
        [b"chunked", b" ", b"body"],
        {"Transfer-Encoding": "chunked"},
    ),
    HttpCase("index", "GET", "/", 200, INDEX_BODY, content_type=TEXT),
    HttpCase("index without a body for HEAD", "HEAD", "/", 200, b""),
    HttpCase(
        "json re-serialized compactly",
        "POST",
        "/json",
        200,
        '{"a":[1,2,{"b":null}],"s":"é","t":true}'.encode(),
        '{ "a" : [1, 2, {"b": null}], "s": "é", "t": true }\n'.encode(),
        {"Content-Type": "application/json"},
        "application/json",
    ),
    HttpCase(
        "invalid json",
        "POST",
        "/json",
        400,
        is_json_error,
        b'{"a": [1,',
        content_type="application/json",
    ),
    HttpCase(
        "NaN is not json",
        "POST",
        "/json",
        400,
        is_json_error,
        b"NaN",
        content_type="application/json",
    ),
    HttpCase("status 201", "GET", "/status/201", 201, b""),
    HttpCase("status 599", "GET", "/status/599", 599, b""),
    HttpCase("status out of range", "GET", "/status/700", 400, None, content_type=TEXT),
    HttpCase("status not a number", "GET", "/status/abc", 400, None, content_type=TEXT),
    HttpCase("unknown path", "GET", "/nope", 404, b""),
    HttpCase("GET on a POST route", "GET", "/echo", 405, b"", allow="POST"),
    HttpCase("POST on a GET route", "POST", "/", 405, b"", b"x", allow="GET,HEAD"),
    HttpCase("DELETE on /status", "DELETE", "/status/200", 405, b"", allow="GET,HEAD"),
]


def http_request(port: int, case: HttpCase) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a fresh connection: the response (headers) and its whole body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT_S)
    try:
        chunked = isinstance(case.request_body, list)
        conn.request(
            case.method,
            case.path,
            body=case.request_body,
            headers=case.headers,
            encode_chunked=chunked,
        )
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


class HttpPeers(unittest.TestCase):
    def check_peer(self, name: str) -> None:
        peer = Peer(self, name)
        self.assertTrue(peer.url.startswith("http://") and peer.url.endswith("/echo"))
        for case in HTTP_CASES:
            with self.subTest(case.what):
                response, body = http_request(peer.port, case)
                self.assertEqual(response.status, case.status)
                if callable(case.body):
                    self.assertTrue(case.body(body), body)
                elif case.body is not None:
                    self.assertEqual(body, case.body)
                if case.content_type is not None:
                    self.assertEqual(response.getheader("Content-Type"), case.content_type)
                if case.allow is not None:
                    self.assertEqual(response.getheader("Allow"), case.allow)
        with self.subTest("a body declared over 16 MiB is refused without being sent"):
            conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=IO_TIMEOUT_S)
            self.addCleanup(conn.close)
            conn.putrequest("POST", "/echo")
            conn.putheader("Content-Length", str(LIMIT + 1))
            conn.endheaders()
            self.assertEqual(conn.getresponse().status, 413)
        peer.stop()

    def test_node_http(self) -> None:
        """node-http answers every route as the reference servers do and stops on SIGTERM."""
        self.check_peer("node-http")

    def test_python_aiohttp(self) -> None:
        """python-aiohttp answers every route as the reference servers do and stops on SIGTERM."""
        self.check_peer("python-aiohttp")

    def test_flask_gunicorn(self) -> None:
        """flask-gunicorn answers every route as the reference servers do and stops on SIGTERM."""
        self.check_peer("flask-gunicorn")


# --- WebSocket ---------------------------------------------------------------------------------

TEXT_OP, BINARY_OP, CLOSE_OP, PING_OP, PONG_OP = 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def mask(data: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key repeated, done on one big integer rather than byte by byte."""
    pad = key * (len(data) // 4 + 1)
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad[:size], "big")).to_bytes(size, "big")


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def write_frame(sock: socket.socket, opcode: int, payload: bytes, masked: bool) -> None:
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if len(payload) < 126:
        head += bytes([bit | len(payload)])
    elif len(payload) < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", len(payload))
    if masked:
        key = os.urandom(4)
        head += key
        payload = mask(payload, key)
    sock.sendall(head + payload)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One whole frame as (opcode, payload), unmasked; fragments are not expected here."""
    first, second = read_exact(sock, 2)
    assert first & 0x80, "fragmented frame"
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", read_exact(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", read_exact(sock, 8))[0]
    key = read_exact(sock, 4) if second & 0x80 else None
    payload = read_exact(sock, size)
    return first & 0x0F, mask(payload, key) if key else payload


class MiniWebSocket:
    """A stdlib-only WebSocket client: just enough to check the echo servers."""

    def __init__(self, port: int, path: str = "/ws") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += read_exact(self.sock, 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if self.status == 101 and headers.get("sec-websocket-accept", "").encode() != accept_key(
            key
        ):
            raise AssertionError(f"wrong Sec-WebSocket-Accept in {head!r}")

    def send(self, opcode: int, payload: bytes) -> None:
        write_frame(self.sock, opcode, payload, masked=True)

    def recv(self) -> tuple[int, bytes]:
        return read_frame(self.sock)

    def close(self) -> None:
        self.sock.close()


WS_CASES = [
    # (what, opcode, payload)
    ("text is echoed as text", TEXT_OP, "héllo ✓ echo".encode()),
    ("binary is echoed as binary", BINARY_OP, BINARY),
    ("an empty binary message", BINARY_OP, b""),
    ("a 70000-byte message (64-bit length)", BINARY_OP, os.urandom(70000)),
    ("ping is answered with pong", PING_OP, b"are you there"),
]


class WebSocketPeers(unittest.TestCase):
    def check_peer(self, name: str) -> None:
        peer = Peer(self, name)
        self.assertTrue(peer.url.startswith("ws://") and peer.url.endswith("/ws"))
        for path in ("/ws", "/"):
            ws = MiniWebSocket(peer.port, path)
            self.assertEqual(ws.status, 101, path)
            for what, opcode, payload in WS_CASES:
                with self.subTest(what, path=path):
                    ws.send(opcode, payload)
                    expected = PONG_OP if opcode == PING_OP else opcode
                    self.assertEqual(ws.recv(), (expected, payload))
            with self.subTest("a close is answered with the same code", path=path):
                ws.send(CLOSE_OP, struct.pack("!H", 1000))
                opcode, payload = ws.recv()
                self.assertEqual((opcode, payload[:2]), (CLOSE_OP, struct.pack("!H", 1000)))
            ws.close()
        with self.subTest("an unknown path is refused"):
            ws = MiniWebSocket(peer.port, "/nope")
            self.assertEqual(ws.status, 404)
            ws.close()
        with self.subTest("SIGTERM sends close 1001 to open connections"):
            ws = MiniWebSocket(peer.port)
            ws.send(TEXT_OP, b"still here")
            self.assertEqual(ws.recv(), (TEXT_OP, b"still here"))
            peer.proc.send_signal(signal.SIGTERM)
            opcode, payload = ws.recv()
            self.assertEqual((opcode, payload[:2]), (CLOSE_OP, struct.pack("!H", 1001)))
            write_frame(ws.sock, CLOSE_OP, payload[:2], masked=True)
            ws.close()
        peer.stop(signalled=True)

    def test_node_ws(self) -> None:
        """node-ws echoes text, binary and pings on /ws and /, and stops on SIGTERM."""
        self.check_peer("node-ws")

    def test_python_websockets(self) -> None:
        """python-websockets echoes text, binary and pings on /ws and /, and stops on SIGTERM."""
        self.check_peer("python-websockets")


# --- clients -----------------------------------------------------------------------------------

REPORT_TYPES = {
    "tool": str,
    "round_trips": int,
    "seconds": float,
    "round_trips_per_s": float,
    "errors": int,
    "p50_us": float,
    "p99_us": float,
    "max_us": float,
}

# Each client with the server on the same stack.
CLIENT_PAIRS = [("node-ws-client", "node-ws"), ("python-websockets-client", "python-websockets")]


class CorruptingServer:
    """A stdlib WebSocket echo server that flips one byte of every third echo, to check that
    the clients notice (a thread per connection; stopped by the test's cleanup)."""

    def __init__(self, test: unittest.TestCase) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.count = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        test.addCleanup(self.listener.close)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed by the cleanup
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += read_exact(conn, 1)
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
                )
                while True:
                    opcode, payload = read_frame(conn)
                    if opcode == CLOSE_OP:
                        write_frame(conn, CLOSE_OP, payload[:2], masked=False)
                        return
                    with self.lock:
                        self.count += 1
                        corrupt = self.count % 3 == 0
                    if corrupt and payload:
                        payload = bytes([payload[0] ^ 0x01]) + payload[1:]
                    write_frame(conn, opcode, payload, masked=False)
            except (OSError, ConnectionError, StopIteration):
                return


class Clients(unittest.TestCase):
    def check_report(self, report: dict, tool: str) -> None:
        self.assertEqual(report["tool"], tool)
        for key, kind in REPORT_TYPES.items():
            self.assertIn(key, report)
            if report["round_trips"] > 0 or not key.endswith("_us"):
                self.assertIsInstance(report[key], (int, float) if kind is float else kind, key)

    def test_clients_against_their_servers(self) -> None:
        """Each client runs ~2 s against its stack's server: round trips counted, no errors."""
        for client, server in CLIENT_PAIRS:
            with self.subTest(client=client, server=server):
                peer = Peer(self, server)
                _, report = run_client(client, peer.url, "-c", "8", "-d", "2", "--warmup", "0.5")
                self.check_report(report, client)
                self.assertGreater(report["round_trips"], 0)
                self.assertEqual(report["errors"], 0)
                self.assertAlmostEqual(report["seconds"], 2.0, delta=0.1)
                self.assertLessEqual(report["p50_us"], report["p99_us"])
                self.assertLessEqual(report["p99_us"], report["max_us"])
                # Connections replaced every 3 round trips, text messages shorter than the id.
                _, report = run_client(
                    client,
                    peer.url,
                    "-c",
                    "4",
                    "-r",
                    "3",
                    "-d",
                    "1",
                    "--warmup",
                    "0.2",
                    "-s",
                    "7",
                    "--ws-mode",
                    "text",
                )
                self.assertGreater(report["round_trips"], 0)
                self.assertEqual(report["errors"], 0)
                peer.stop()

    def test_clients_count_corrupted_echoes(self) -> None:
        """An echo that differs from the message is an error, never a round trip."""
        server = CorruptingServer(self)
        for client, _ in CLIENT_PAIRS:
            with self.subTest(client=client):
                url = f"ws://127.0.0.1:{server.port}/ws"
                _, report = run_client(client, url, "-c", "2", "-d", "1", "--warmup", "0")
                self.assertGreater(report["errors"], 0)
                # Every third echo is corrupt: two round trips per error, give or take the
                # connections cut at the window's edges.
                self.assertAlmostEqual(report["round_trips"], 2 * report["errors"], delta=4)

    def test_clients_count_refused_connections(self) -> None:
        """A refused connection is an error, retried with a backoff; nothing is measured."""
        # A bound socket that never listens: connects to its port are refused, and no other
        # process can take the port meanwhile.
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            url = f"ws://127.0.0.1:{closed.getsockname()[1]}/ws"
            for client, _ in CLIENT_PAIRS:
                with self.subTest(client=client):
                    _, report = run_client(client, url, "-c", "2", "-d", "0.5", "--warmup", "0")
                    self.check_report(report, client)
                    self.assertEqual(report["round_trips"], 0)
                    self.assertGreater(report["errors"], 0)
                    self.assertIsNone(report["p50_us"])

    def test_clients_refuse_remote_targets(self) -> None:
        """A target outside loopback is refused with exit code 2 before any traffic."""
        for client, _ in CLIENT_PAIRS:
            with self.subTest(client=client):
                done = subprocess.run(
                    [RUN, client, "ws://192.0.2.1:80/ws", "-d", "1"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertEqual(done.stdout, "")


class RunScript(unittest.TestCase):
    def test_list_names_every_peer(self) -> None:
        """run.sh --list names the seven peers; an unknown name exits 2."""
        done = subprocess.run([RUN, "--list"], capture_output=True, text=True, timeout=30)
        names = [line.split()[0] for line in done.stdout.splitlines()]
        self.assertEqual(
            names,
            [
                "node-ws",
                "node-http",
                "python-websockets",
                "python-aiohttp",
                "flask-gunicorn",
                "node-ws-client",
                "python-websockets-client",
            ],
        )
        done = subprocess.run([RUN, "no-such-peer"], capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 2)

    def test_install_is_idempotent(self) -> None:
        """A second install.sh changes no file and reports both halves up to date."""
        before = tree_snapshot(PREFIX)
        done = subprocess.run([INSTALL], capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("node: up to date", done.stdout)
        self.assertIn("python: up to date", done.stdout)
        self.assertEqual(tree_snapshot(PREFIX), before)


def tree_snapshot(root: str) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its modification time and size."""
    snapshot = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            snapshot[os.path.relpath(path, root)] = (info.st_mtime_ns, info.st_size)
    return snapshot


if __name__ == "__main__":
    unittest.main()
