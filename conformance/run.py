#!/usr/bin/env python3
"""WebSocket conformance: runs the Autobahn TestSuite's fuzzing client (`wstest -m fuzzingclient`,
cases 1-10) against each WebSocket reference server and fails on any FAILED case.

For each implementation it starts `target/release/echo-server IMPL --addr 127.0.0.1:0` in a
process group of its own, reads the ready line, runs wstest once against it, stops it with
SIGTERM (SIGKILL after 5 s), and prints one line of counts. wstest skips, and still exits 0
for, every case of a server it cannot connect to, so the counts are taken over the case list
wstest itself resolved from the spec, and a case missing from the report counts as FAILED
(see autobahn_report.py for every rule).

Everything lands in target/autobahn-report/IMPL/: spec.json, wstest.log, server.log, the HTML
report (index.html) with index.json and one file per case; target/autobahn-report/summary.json
has all counts as data. Needs conformance/install.sh to have run (`just conformance` does both).
Cases 12.* and 13.* (permessage-deflate) do not apply: tungstenite 0.29 has no compression.

Python 3.11, standard library only. Unit tests: `python3 -m unittest discover -s conformance`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from autobahn_report import ReportError, Summary, expected_cases, summarize

ROOT = Path(__file__).resolve().parent.parent
WSTEST = ROOT / "target" / "autobahn" / "bin" / "wstest"
SERVER = ROOT / "target" / "release" / "echo-server"
REPORTS = ROOT / "target" / "autobahn-report"

IMPLS = ("tungstenite", "axum-ws")
CASES = [f"{n}.*" for n in range(1, 11)]

READY_TIMEOUT = 15.0
"""Seconds a server gets to print its ready line."""
STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL (the server promises to exit within 5 s)."""
WSTEST_TIMEOUT = 900.0
"""Seconds one wstest run may take; cases 1-10 take about 20 s against a healthy server."""

READY_LINE = re.compile(r"^listening (ws://\S+)$")


class RunError(Exception):
    """A step of the run that could not be done; the message says what and what to do."""


def build() -> None:
    """Builds the release echo-server (quick when it is up to date)."""
    command = ["cargo", "build", "--release", "-p", "echo-server", "--bin", "echo-server"]
    print("$ " + " ".join(command), flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise RunError("cargo build failed (see above)")


def start_server(impl: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Starts one server in its own process group and returns it with the URL it reported."""
    log = open(log_path, "wb")
    try:
        server = subprocess.Popen(
            [str(SERVER), impl, "--addr", "127.0.0.1:0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()
    try:
        return server, read_ready_line(server, impl)
    except RunError:
        stop_server(server)
        raise


def read_ready_line(server: subprocess.Popen[bytes], impl: str) -> str:
    """Waits (bounded) for the one `listening ws://...` line on the server's stdout."""
    assert server.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    buffered = b""
    with selectors.DefaultSelector() as selector:
        selector.register(server.stdout, selectors.EVENT_READ)
        while b"\n" not in buffered:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunError(f"{impl}: no ready line within {READY_TIMEOUT:.0f} s")
            if not selector.select(left):
                continue
            chunk = os.read(server.stdout.fileno(), 4096)
            if not chunk:
                raise RunError(
                    f"{impl}: echo-server exited (code {server.wait()}) before it was ready;"
                    " see its server.log"
                )
            buffered += chunk
    line = buffered.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    match = READY_LINE.match(line)
    if match is None:
        raise RunError(f"{impl}: unexpected ready line {line!r} (want 'listening ws://...')")
    return match.group(1)


def stop_server(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT; its exit code."""
    if server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(STOP_TIMEOUT)
    if server.stdout is not None:
        server.stdout.close()
    return server.returncode


def write_spec(impl: str, url: str, outdir: Path, cases: list[str]) -> Path:
    """The fuzzingclient spec: this one server, agent name = implementation name."""
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": impl, "url": url}],
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    path = outdir / "spec.json"
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


def run_wstest(spec: Path, log_path: Path) -> str:
    """Runs wstest on `spec` (bounded) and returns its output, which is also kept in the log."""
    command = [str(WSTEST), "--mode", "fuzzingclient", "--spec", str(spec)]
    with open(log_path, "wb") as log:
        wstest = subprocess.Popen(
            command,
            cwd=spec.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = wstest.wait(WSTEST_TIMEOUT)
        except BaseException as err:  # the timeout, or Ctrl-C: wstest has a session of its own
            os.killpg(wstest.pid, signal.SIGKILL)
            wstest.wait(STOP_TIMEOUT)
            if isinstance(err, subprocess.TimeoutExpired):
                raise RunError(f"wstest took over {WSTEST_TIMEOUT:.0f} s; see {log_path}") from None
            raise
    output = log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise RunError(f"wstest exited with {code}; see {log_path}")
    return output


def check(impl: str, cases: list[str]) -> Summary:
    """One server: start, fuzz, stop, count."""
    outdir = REPORTS / impl
    # A stale report would hide a run that tested nothing.
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    server, url = start_server(impl, outdir / "server.log")
    print(f"{impl}: {url}: running wstest (log: {rel(outdir / 'wstest.log')})", flush=True)
    try:
        output = run_wstest(write_spec(impl, url, outdir, cases), outdir / "wstest.log")
    finally:
        code = stop_server(server)
    if code != 0:
        raise RunError(
            f"{impl}: echo-server exited with {code} after SIGTERM (want 0);"
            f" see {rel(outdir / 'server.log')}"
        )
    return summarize(outdir, impl, expected_cases(output))


def rel(path: Path) -> str:
    """A path relative to the workspace, for messages."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--impl",
        action="append",
        choices=IMPLS,
        help="implementation to test (repeatable; default: all WebSocket servers)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=CASES,
        metavar="PATTERN",
        help="wstest case patterns (default: 1.* to 10.*)",
    )
    args = parser.parse_args()
    impls = args.impl or list(IMPLS)

    if not os.access(WSTEST, os.X_OK):
        print(f"Error: {rel(WSTEST)} not found; run conformance/install.sh first", file=sys.stderr)
        return 1
    started = time.monotonic()
    summaries: list[Summary] = []
    try:
        build()
        for impl in impls:
            summaries.append(check(impl, args.cases))
    except (RunError, ReportError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1

    REPORTS.mkdir(parents=True, exist_ok=True)
    summary_path = REPORTS / "summary.json"
    summary_path.write_text(
        json.dumps({"servers": [s.to_json() for s in summaries]}, indent=2) + "\n",
        encoding="utf-8",
    )
    print()
    for summary in summaries:
        print(summary.line())
        if summary.failed:
            shown = ", ".join(summary.failed[:20])
            more = f" and {len(summary.failed) - 20} more" if len(summary.failed) > 20 else ""
            print(f"  FAILED: {shown}{more}")
    print(
        f"reports: {rel(REPORTS)}/IMPL/index.html, counts: {rel(summary_path)}"
        f" ({time.monotonic() - started:.0f} s)"
    )
    return 0 if all(s.ok for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
