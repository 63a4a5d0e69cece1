"""The broadcast route checked by a client that is not ours: Python `websockets` clients on
/broadcast of both reference WebSocket servers (the release `echo-server`) and of the two
WebSocket peers. One client's message must reach every other client, and its sender, once.

Runs with the system python3 (`python3 -m unittest peers/test_broadcast.py` from the
repository root) after `cargo build --release` and peers/install.sh (for the websockets venv).
No sleeps: every wait has a deadline.
"""

from __future__ import annotations

import os
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "echo-server")
RUN_PEER = os.path.join(ROOT, "peers", "run.sh")
PREFIX = os.environ.get("ECHOBENCH_PEERS_PREFIX") or os.path.join(ROOT, "target", "peers")
VENV_PYTHON = os.path.join(PREFIX, "venv", "bin", "python")
TIMEOUT_S = 10.0

# Three clients join in turn, each confirmed by its own hello (so all are subscribed); then
# each publishes one message and every client must receive all three, once each, besides the
# hellos of those who joined after it.
CLIENTS = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url):
    clients = []
    for i in range(3):
        ws = await connect(url, open_timeout=10)
        await ws.send(f"hello {i}")
        assert await asyncio.wait_for(ws.recv(), 10) == f"hello {i}"
        clients.append(ws)
    for i, ws in enumerate(clients):
        await ws.send(f"from {i}")
    for i, ws in enumerate(clients):
        later = [f"hello {j}" for j in range(i + 1, 3)]
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(len(later) + 3)]
        assert got == later + ["from 0", "from 1", "from 2"], (i, got)
    for ws in clients:
        await ws.close()
    print("ok")

asyncio.run(main(sys.argv[1]))
"""


class BroadcastFromOutside(unittest.TestCase):
    def check(self, argv: list[str]) -> None:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, r"^listening ws://127\.0\.0\.1:\d+/ws\n$", argv)
            url = line.split()[1].removesuffix("/ws") + "/broadcast"
            done = subprocess.run(
                [VENV_PYTHON, "-c", CLIENTS, url],
                capture_output=True, text=True, timeout=3 * TIMEOUT_S,
            )
            self.assertEqual(done.returncode, 0, f"{argv}: {done.stderr}")
            self.assertEqual(done.stdout, "ok\n", argv)
        finally:
            proc.terminate()
            proc.wait(TIMEOUT_S)
            proc.stdout.close()
            proc.stderr.close()

    def test_reference_servers(self) -> None:
        self.assertTrue(os.path.exists(SERVER), f"{SERVER} is missing: cargo build --release first")
        self.assertTrue(os.path.exists(VENV_PYTHON), "run peers/install.sh first")
        for impl in ["tungstenite", "axum-ws"]:
            self.check([SERVER, impl, "--threads", "1"])

    def test_peers(self) -> None:
        self.assertTrue(os.path.exists(VENV_PYTHON), "run peers/install.sh first")
        for peer in ["node-ws", "python-websockets"]:
            self.check([RUN_PEER, peer])


if __name__ == "__main__":
    unittest.main()
