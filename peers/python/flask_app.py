"""flask-gunicorn (the app): the HTTP echo routes of the reference servers as a Flask WSGI app,
the classic synchronous Python baseline. `gunicorn_server.py` serves it; the body limit comes
from ECHOBENCH_MAX_MESSAGE (set by that launcher).

Flask answers 404/405/413 itself; the error handlers only strip the HTML bodies so that every
peer answers them alike (empty 404/405 with `Allow`, a one-line text 413).
"""

from __future__ import annotations

import os

from flask import Flask, Response, request
from werkzeug.exceptions import MethodNotAllowed

import peer_common as common

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = int(os.environ.get("ECHOBENCH_MAX_MESSAGE", common.MAX_MESSAGE))

# Flask would answer OPTIONS on every route by itself; the reference servers answer 405.
ROUTE = {"provide_automatic_options": False}


def empty(status: int) -> Response:
    response = Response(status=status)
    # Werkzeug labels even an empty body text/html.
    del response.headers["Content-Type"]
    return response


def text(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type=common.TEXT)


@app.get("/", **ROUTE)
def index() -> Response:
    return text(200, common.INDEX_BODY)


@app.post("/echo", **ROUTE)
def echo() -> Response:
    # get_data raises 413 past MAX_CONTENT_LENGTH (before reading when Content-Length says so).
    body = request.get_data(cache=False)
    content_type = request.headers.get("Content-Type", common.DEFAULT_CONTENT_TYPE)
    return Response(body, headers={"Content-Type": content_type})


@app.post("/json", **ROUTE)
def json_route() -> Response:
    status, out = common.reserialize_json(request.get_data(cache=False))
    return Response(out, status=status, content_type="application/json")


@app.get("/status/<code>", **ROUTE)
def status(code: str) -> Response:
    value = common.status_code(code)
    if value is None:
        return text(400, common.bad_status_body(code))
    return empty(value)


@app.errorhandler(404)
def not_found(_err) -> Response:
    return empty(404)


@app.errorhandler(405)
def method_not_allowed(err: MethodNotAllowed) -> Response:
    response = empty(405)
    response.headers["Allow"] = ",".join(sorted(err.valid_methods or ()))
    return response


@app.errorhandler(413)
def too_large(_err) -> Response:
    # gunicorn drops a Connection header set by the app; its sync worker closes every
    # connection after one response anyway.
    return text(413, common.too_large_body(app.config["MAX_CONTENT_LENGTH"]))
