"""python-websockets: WebSocket echo on /ws and / with the `websockets` package's asyncio
server (one process, one event loop). The library answers pings, echoes close codes,
reassembles fragments and closes with 1007 (invalid UTF-8), 1009 (too big) or 1002 itself.

On /broadcast every message goes to every client connected there, the sender included, in the
order received, through the library's `broadcast()` helper. `broadcast()` has no backpressure
(a slow client's write buffer grows without bound), so the server bounds it: a client whose
unwritten bytes would pass `--broadcast-queue` messages' worth gets the policy first.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import peer_common as common


class Relay:
    """The /broadcast subscribers and the policy for one that falls behind."""

    def __init__(self, policy: str, queue: int) -> None:
        self.policy = policy
        self.queue = queue
        self.subscribers: set[ServerConnection] = set()
        self.dropped = 0

    def publish(self, message: str | bytes) -> None:
        limit = self.queue * (len(message) + 14)  # a frame's header is at most 14 bytes
        ready = []
        for ws in list(self.subscribers):
            if ws.transport.get_write_buffer_size() + len(message) <= limit:
                ready.append(ws)
            elif self.policy == "drop":
                self.dropped += 1
            else:
                self.subscribers.discard(ws)
                asyncio.ensure_future(
                    ws.close(1008, "subscriber too slow: its broadcast queue was full")
                )
        broadcast(ready, message)

    async def serve(self, ws: ServerConnection) -> None:
        self.subscribers.add(ws)
        try:
            async for message in ws:
                self.publish(message)
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(ws)


def handler(relay: Relay):
    async def session(ws: ServerConnection) -> None:
        if ws.request.path.split("?", 1)[0] == "/broadcast":
            await relay.serve(ws)
            return
        # A text message arrives as str and is sent back as text; binary as bytes, as binary.
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass  # the peer went away without a close handshake: nothing to answer

    return session


def check_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] in ("/ws", "/", "/broadcast"):
        return None
    return connection.respond(
        HTTPStatus.NOT_FOUND, "no WebSocket endpoint here: use /ws (echo) or /broadcast\n"
    )


async def serve_forever(args, tls) -> None:
    host, port = args.addr
    try:
        server = await serve(
            handler(Relay(args.broadcast_policy, args.broadcast_queue)),
            host,
            port,
            process_request=check_path,
            max_size=args.max_message,
            # As in the reference servers: no compression, no keepalive pings of our own, and
            # 1 s for a peer to answer our close at shutdown.
            compression=None,
            ping_interval=None,
            close_timeout=1,
            backlog=common.BACKLOG,
            ssl=tls,
        )
    except OSError as err:
        message = f"Error: could not listen on {host}:{port}: {err.strerror or err}"
        raise SystemExit(message) from None
    stop = common.stop_signal()
    common.announce("wss" if tls else "ws", server.sockets[0].getsockname(), "/ws")
    await stop.wait()
    # Stops accepting and sends close 1001 to every peer.
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = common.server_parser(
        "WebSocket echo server (websockets, asyncio) on /ws and /. Prints "
        "'listening ws://HOST:PORT/ws' (wss:// with --cert) when ready; SIGTERM/SIGINT send "
        "close 1001 to every peer and stop it (exit 0)."
    )
    parser.add_argument(
        "--broadcast-policy",
        choices=["drop", "disconnect"],
        default="disconnect",
        help="what a /broadcast client with a full queue gets: drop (the message, counted) or "
        "disconnect (close 1008) (default: disconnect)",
    )
    parser.add_argument(
        "--broadcast-queue",
        type=common.positive_int,
        default=1024,
        metavar="N",
        help="messages' worth of unwritten bytes a /broadcast client may have (default: 1024)",
    )
    args = parser.parse_args()
    tls = common.server_tls(parser, args)
    common.setup_logging()
    asyncio.run(serve_forever(args, tls))


if __name__ == "__main__":
    main()
