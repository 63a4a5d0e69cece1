"""python-aiohttp: the HTTP echo routes of the reference servers on aiohttp's web server
(asyncio, one process, one event loop).

aiohttp routes, parses and answers 404/405 itself; a middleware only strips the HTML-ish
bodies of those two so that every peer answers them alike (empty body, `Allow` on 405).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

import peer_common as common

#: The body limit, kept on the application for the handlers.
LIMIT = web.AppKey("limit", int)


def text(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/plain", charset="utf-8")


def too_large(limit: int) -> web.Response:
    response = text(413, common.too_large_body(limit))
    # The rest of the body is unread, so the connection cannot carry another request.
    response.force_close()
    return response


async def read_body(request: web.Request) -> bytes | web.Response:
    """The whole body, or a 413 response once it passes the limit (before reading a byte of
    it when `Content-Length` already says so)."""
    limit = request.app[LIMIT]
    if request.content_length is not None and request.content_length > limit:
        return too_large(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large(limit)


async def index(_request: web.Request) -> web.Response:
    return text(200, common.INDEX_BODY)


async def echo(request: web.Request) -> web.Response:
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    content_type = request.headers.get("Content-Type", common.DEFAULT_CONTENT_TYPE)
    # A raw header rather than `content_type=`: aiohttp would re-format the value.
    return web.Response(body=body, headers={"Content-Type": content_type})


async def json_route(request: web.Request) -> web.Response:
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    status, out = common.reserialize_json(body)
    return web.Response(status=status, body=out, content_type="application/json")


async def status(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    value = common.status_code(code)
    if value is None:
        return text(400, common.bad_status_body(code))
    return web.Response(status=value)


@web.middleware
async def plain_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as err:
        return web.Response(status=405, headers={"Allow": ",".join(sorted(err.allowed_methods))})
    except web.HTTPNotFound:
        return web.Response(status=404)


def app(limit: int) -> web.Application:
    application = web.Application(client_max_size=limit, middlewares=[plain_errors])
    application[LIMIT] = limit
    application.add_routes(
        [
            web.get("/", index),
            web.post("/echo", echo),
            web.post("/json", json_route),
            web.get("/status/{code}", status),
        ]
    )
    return application


async def serve(args, tls) -> None:
    host, port = args.addr
    # No access log: formatting one line per request would be most of the work measured.
    runner = web.AppRunner(app(args.max_message), access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, backlog=common.BACKLOG, shutdown_timeout=3.0, ssl_context=tls
    )
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        message = f"Error: could not listen on {host}:{port}: {err.strerror or err}"
        raise SystemExit(message) from None
    stop = common.stop_signal()
    common.announce("https" if tls else "http", runner.addresses[0], "/echo")
    await stop.wait()
    # Stops accepting, answers requests in flight (at most 3 s), closes keep-alive connections.
    await runner.cleanup()


def main() -> None:
    parser = common.server_parser(
        "HTTP echo server (aiohttp): POST /echo, GET /, POST /json, GET /status/CODE. "
        "Prints 'listening http://HOST:PORT/echo' (https:// with --cert) when ready; "
        "SIGTERM/SIGINT stop it (exit 0)."
    )
    args = parser.parse_args()
    tls = common.server_tls(parser, args)
    common.setup_logging()
    asyncio.run(serve(args, tls))


if __name__ == "__main__":
    main()
