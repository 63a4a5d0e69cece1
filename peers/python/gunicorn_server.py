"""flask-gunicorn (the launcher): serves flask_app.py with gunicorn and speaks the peers'
protocol for it, which gunicorn itself cannot: one `listening http://HOST:PORT/echo` line on
stdout once a request has really been answered, exit 0 on SIGTERM/SIGINT.

The launcher binds the socket itself (port 0 picks a free one, no race) and hands it to a
foreground gunicorn as `--bind fd://N`; gunicorn's own output goes to stderr. By default one
`sync` worker: the classic deployment, which answers one request at a time and closes the
connection after every response (a keep-alive client reconnects each time; `--threads N`
selects gunicorn's `gthread` worker, which keeps connections alive).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import peer_common as common

HERE = os.path.dirname(os.path.abspath(__file__))

#: Longest wait for gunicorn to answer its first request.
READY_TIMEOUT_S = 30.0


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        message = f"Error: could not listen on {host}:{port}: {err.strerror or err}"
        raise SystemExit(message) from None
    sock.listen(common.BACKLOG)
    sock.set_inheritable(True)
    return sock


def wait_until_serving(address: tuple, gunicorn: subprocess.Popen) -> bool:
    """Sends one real request and waits (bounded) for its answer; False if gunicorn exited or
    the time ran out. The socket accepts before any worker runs, so a connect proves nothing."""
    host, port = address[0], address[1]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        with socket.create_connection((host, port), timeout=READY_TIMEOUT_S) as probe:
            probe.sendall(b"GET / HTTP/1.0\r\nHost: ready-check\r\n\r\n")
            # Short reads, so that a gunicorn that dies while booting is noticed at once.
            probe.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    return probe.recv(16).startswith(b"HTTP/1.")
                except TimeoutError:
                    if gunicorn.poll() is not None:
                        return False
    except OSError:
        pass  # refused or reset: gunicorn exited and took the socket with it
    return False


def gunicorn_command(args, fd: int, extra: list[str]) -> list[str]:
    options = {
        "--bind": f"fd://{fd}",
        "--chdir": HERE,
        "--workers": str(args.workers),
        "--threads": str(args.threads),
        "--backlog": str(common.BACKLOG),
        # Requests in flight get 3 s at shutdown, so the whole stop fits in 5 s.
        "--graceful-timeout": "3",
        "--log-level": "warning",
        "--error-logfile": "-",
    }
    if args.worker_class:
        options["--worker-class"] = args.worker_class
    flags = [word for pair in options.items() for word in pair]
    # Flags the launcher does not know come last, so they override its own.
    return [sys.executable, "-m", "gunicorn", *flags, *extra, "flask_app:app"]


def main() -> None:
    parser = common.server_parser(
        "HTTP echo server: flask_app.py (Flask, WSGI) under gunicorn. Prints "
        "'listening http://HOST:PORT/echo' once it answers; SIGTERM/SIGINT stop it (exit 0). "
        "Unknown flags are passed to gunicorn."
    )
    parser.add_argument(
        "--workers",
        type=common.positive_int,
        default=1,
        metavar="N",
        help="gunicorn worker processes (default: 1)",
    )
    parser.add_argument(
        "--threads",
        type=common.positive_int,
        default=1,
        metavar="N",
        help="threads per worker; more than 1 selects the gthread worker (default: 1)",
    )
    parser.add_argument(
        "--worker-class",
        default=None,
        metavar="CLASS",
        help="gunicorn worker class (default: sync, or gthread with --threads)",
    )
    args, extra = parser.parse_known_args()

    gunicorn: subprocess.Popen | None = None
    stopping = False

    def on_signal(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if gunicorn is None:
            sys.exit(0)  # nothing started yet
        # TERM is gunicorn's graceful stop, whichever signal we got.
        gunicorn.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sock = listen(*args.addr)
    env = dict(os.environ, ECHOBENCH_MAX_MESSAGE=str(args.max_message))
    command = gunicorn_command(args, sock.fileno(), extra)
    gunicorn = subprocess.Popen(command, env=env, stdout=sys.stderr, pass_fds=[sock.fileno()])
    address = sock.getsockname()
    sock.close()
    try:
        if wait_until_serving(address, gunicorn):
            common.announce("http", address, "/echo")
        elif not stopping:
            code = gunicorn.poll()
            if code is not None:
                print(
                    f"Error: gunicorn exited with code {code} before answering a request "
                    "(its messages are above)",
                    file=sys.stderr,
                )
                sys.exit(code if code > 0 else 1)
            print(
                f"Error: gunicorn did not answer within {READY_TIMEOUT_S:.0f} s "
                "(its messages are above)",
                file=sys.stderr,
            )
            sys.exit(1)
        code = gunicorn.wait()
    finally:
        # Whatever went wrong here, leave no gunicorn behind.
        if gunicorn.poll() is None:
            gunicorn.terminate()
            try:
                gunicorn.wait(5)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
    if stopping and code in (0, -signal.SIGTERM):
        sys.exit(0)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
