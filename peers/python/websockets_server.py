"""python-websockets: WebSocket echo on /ws and / with the `websockets` package's asyncio
server (one process, one event loop). The library answers pings, echoes close codes,
reassembles fragments and closes with 1007 (invalid UTF-8), 1009 (too big) or 1002 itself.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import peer_common as common


async def echo(ws: ServerConnection) -> None:
    # A text message arrives as str and is sent back as text; binary as bytes, as binary.
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # the peer went away without a close handshake: nothing to answer


def check_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] in ("/ws", "/"):
        return None
    return connection.respond(HTTPStatus.NOT_FOUND, "no WebSocket endpoint here: use /ws\n")


async def serve_forever(args) -> None:
    host, port = args.addr
    try:
        server = await serve(
            echo,
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
        )
    except OSError as err:
        message = f"Error: could not listen on {host}:{port}: {err.strerror or err}"
        raise SystemExit(message) from None
    stop = common.stop_signal()
    common.announce("ws", server.sockets[0].getsockname(), "/ws")
    await stop.wait()
    # Stops accepting and sends close 1001 to every peer.
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = common.server_parser(
        "WebSocket echo server (websockets, asyncio) on /ws and /. Prints "
        "'listening ws://HOST:PORT/ws' when ready; SIGTERM/SIGINT send close 1001 to every "
        "peer and stop it (exit 0)."
    )
    args = parser.parse_args()
    common.setup_logging()
    asyncio.run(serve_forever(args))


if __name__ == "__main__":
    main()
