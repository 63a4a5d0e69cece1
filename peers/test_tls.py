"""Every reference server over TLS, checked by clients that are not ours: curl --cacert for
the HTTP servers, Python websockets with an SSL context for the WebSocket servers, and the
standard library's ssl module for raw TLS. Each server is the release `echo-server` started
with --tls --cert-out, as a user would; the client trusts exactly the file it wrote. The TLS
peers (Node https and wss, aiohttp, websockets) serve the identity `echo-server --make-cert`
wrote, and the same clients trust its authority.

Runs with the system python3 (`python3 -m unittest peers/test_tls.py` from the repository
root) after `cargo build --release` and peers/install.sh (for the websockets venv) and with
curl installed (scripts/install-tools.sh installs it). No sleeps: every wait has a deadline.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "echo-server")
RUN_PEER = os.path.join(ROOT, "peers", "run.sh")
PREFIX = os.environ.get("ECHOBENCH_PEERS_PREFIX") or os.path.join(ROOT, "target", "peers")
VENV_PYTHON = os.path.join(PREFIX, "venv", "bin", "python")
TIMEOUT_S = 10.0

WEBSOCKETS_CLIENT = """
import asyncio, ssl, sys
from websockets.asyncio.client import connect

async def main(url, cafile):
    context = ssl.create_default_context(cafile=cafile)
    async with connect(url, ssl=context, open_timeout=10) as ws:
        for message in ["hello over wss", b"\\x00\\x01binary"]:
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), 10)
            assert echo == message, (echo, message)
    print("ok")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def make_cert(test: unittest.TestCase, directory: str) -> str:
    """`echo-server --make-cert DIR`: ca.pem, cert.pem and key.pem in `directory`."""
    done = subprocess.run(
        [SERVER, "--make-cert", directory], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    test.assertEqual(done.returncode, 0, done.stderr)
    return os.path.join(directory, "ca.pem")


class TlsServer:
    """`echo-server IMPL --tls --cert-out FILE` on port 0 (or, with `peer`, that peer given
    the identity `make_cert` wrote in `directory`), with its ready line read."""

    def __init__(
        self, test: unittest.TestCase, impl: str, directory: str, peer: bool = False
    ) -> None:
        if peer:
            self.cafile = os.path.join(directory, "ca.pem")
            cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
            argv = [RUN_PEER, impl, "--cert", cert, "--key", key]
        else:
            self.cafile = os.path.join(directory, f"{impl}-ca.pem")
            argv = [SERVER, impl, "--tls", "--cert-out", self.cafile, "--threads", "1"]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        test.addCleanup(self.stop)
        line = self.proc.stdout.readline()
        test.assertRegex(line, r"^listening (https|wss|tls)://127\.0\.0\.1:\d+", impl)
        self.url = line.split()[1]
        self.port = int(self.url.split(":")[2].split("/")[0])
        # The certificate is issued for localhost as well as 127.0.0.1.
        self.localhost_url = self.url.replace("127.0.0.1", "localhost", 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT_S)
        self.proc.stdout.close()
        self.proc.stderr.close()


class OutsideClients(unittest.TestCase):
    def setUp(self) -> None:
        self.assertTrue(os.path.exists(SERVER), f"{SERVER} is missing: cargo build --release first")
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def test_curl_against_the_http_servers(self) -> None:
        curl = shutil.which("curl")
        self.assertIsNotNone(curl, "curl is not installed (scripts/install-tools.sh installs it)")
        self.assertTrue(os.path.exists(VENV_PYTHON), "run peers/install.sh first")
        make_cert(self, self.dir)
        body = b"echo over https \x00\xff" * 100
        for impl, peer in [
            ("hyper", False), ("axum", False), ("node-http", True), ("python-aiohttp", True)
        ]:
            server = TlsServer(self, impl, self.dir, peer)
            for url in [server.url, server.localhost_url]:
                done = subprocess.run(
                    [curl, "-sS", "--cacert", server.cafile, "--data-binary", "@-",
                     "-H", "Content-Type: application/octet-stream", url],
                    input=body, capture_output=True, timeout=TIMEOUT_S,
                )
                self.assertEqual(done.returncode, 0, f"{impl} {url}: {done.stderr!r}")
                self.assertEqual(done.stdout, body, impl)
            # Without the authority curl refuses the certificate (exit 60).
            done = subprocess.run([curl, "-sS", server.url, "-d", "x"],
                                  capture_output=True, timeout=TIMEOUT_S)
            self.assertEqual(done.returncode, 60, f"{impl}: {done.stderr!r}")

    def test_python_websockets_against_the_websocket_servers(self) -> None:
        self.assertTrue(os.path.exists(VENV_PYTHON), "run peers/install.sh first")
        make_cert(self, self.dir)
        for impl, peer in [
            ("tungstenite", False), ("axum-ws", False), ("node-ws", True),
            ("python-websockets", True),
        ]:
            server = TlsServer(self, impl, self.dir, peer)
            done = subprocess.run(
                [VENV_PYTHON, "-c", WEBSOCKETS_CLIENT, server.localhost_url, server.cafile],
                capture_output=True, text=True, timeout=3 * TIMEOUT_S,
            )
            self.assertEqual(done.returncode, 0, f"{impl}: {done.stderr}")
            self.assertEqual(done.stdout, "ok\n", impl)

    def test_python_ssl_against_the_tcp_server(self) -> None:
        server = TlsServer(self, "tcp", self.dir)
        for version, name in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
            context = ssl.create_default_context(cafile=server.cafile)
            context.minimum_version = context.maximum_version = version
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT_S) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.assertEqual(tls.version(), name)
                    tls.sendall(b"ping over tls")
                    echo = b""
                    while len(echo) < 13:
                        chunk = tls.recv(64)
                        self.assertTrue(chunk, "closed before the echo")
                        echo += chunk
                    self.assertEqual(echo, b"ping over tls")


    def test_peers_refuse_bad_tls_flags(self) -> None:
        """Half of --cert/--key is a usage error (exit 2); unreadable or mismatched files exit
        1 with one `Error:` line naming the problem, before any ready line."""
        self.assertTrue(os.path.exists(VENV_PYTHON), "run peers/install.sh first")
        make_cert(self, self.dir)
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        make_cert(self, other)
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        missing = os.path.join(self.dir, "missing.pem")
        cases = [
            (["--cert", cert], 2, "--cert and --key go together"),
            (["--cert", missing, "--key", key], 1, "missing.pem"),
            (["--cert", cert, "--key", os.path.join(other, "key.pem")], 1, ""),
        ]
        for peer in ["node-http", "node-ws", "python-aiohttp", "python-websockets"]:
            for args, code, needle in cases:
                done = subprocess.run(
                    [RUN_PEER, peer, *args], capture_output=True, text=True, timeout=TIMEOUT_S
                )
                self.assertEqual(done.returncode, code, f"{peer} {args}: {done.stderr}")
                self.assertEqual(done.stdout, "", f"{peer} {args}: no ready line")
                self.assertIn(needle, done.stderr, f"{peer} {args}")
                self.assertNotIn("Traceback", done.stderr, f"{peer} {args}")
                if code == 1:
                    self.assertRegex(done.stderr, r"^Error: [^\n]+\n$", f"{peer} {args}")


if __name__ == "__main__":
    unittest.main()
