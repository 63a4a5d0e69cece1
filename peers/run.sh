#!/usr/bin/env bash
# Starts one peer by name with the interpreter and module paths install.sh set up, replacing
# this shell (so signals reach the peer itself):
#
#   peers/run.sh NAME [ARGS...]     e.g. peers/run.sh node-ws --addr 127.0.0.1:0
#   peers/run.sh --list             the names, one a line: NAME KIND DESCRIPTION
#
# Servers print one `listening URL` line on stdout when ready; clients print one JSON line.
# Run peers/install.sh first. ECHOBENCH_PEERS_PREFIX must match the one install.sh used.
set -euo pipefail

peers=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${ECHOBENCH_PEERS_PREFIX:-$(dirname "$peers")/target/peers}

list() {
    cat <<'EOF'
node-ws                   websocket  Node.js ws 8.23.0 (WebSocketServer on node:http)
node-http                 http       Node.js node:http (no framework)
python-websockets         websocket  Python websockets 17.4 (asyncio server)
python-aiohttp            http       Python aiohttp 3.14.5 (web.Application)
flask-gunicorn            http       Python Flask 3.1.3 (WSGI) on gunicorn 27.0.1, 1 sync worker
node-ws-client            client     Node.js ws 8.23.0 round-trip load client
python-websockets-client  client     Python websockets 17.4 round-trip load client
EOF
}

usage() {
    echo "Usage: peers/run.sh NAME [ARGS...]   (peers/run.sh --list for the names; NAME --help for its flags)" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
name=$1
shift

node_peer() {
    [[ -d $prefix/node/node_modules/ws ]] || { echo "Error: $name is not installed: run peers/install.sh" >&2; exit 1; }
    NODE_PATH=$prefix/node/node_modules exec node "$peers/node/$1" "${@:2}"
}

python_peer() {
    [[ -x $prefix/venv/bin/python ]] || { echo "Error: $name is not installed: run peers/install.sh" >&2; exit 1; }
    # No __pycache__ in the source tree.
    PYTHONDONTWRITEBYTECODE=1 exec "$prefix/venv/bin/python" "$peers/python/$1" "${@:2}"
}

case "$name" in
    --list) list ;;
    -h | --help) list; usage ;;
    node-ws) node_peer ws-server.js "$@" ;;
    node-http) node_peer http-server.js "$@" ;;
    node-ws-client) node_peer ws-client.js "$@" ;;
    python-websockets) python_peer websockets_server.py "$@" ;;
    python-aiohttp) python_peer aiohttp_server.py "$@" ;;
    flask-gunicorn) python_peer gunicorn_server.py "$@" ;;
    python-websockets-client) python_peer websockets_client.py "$@" ;;
    *) echo "Error: no peer named '$name' (peers/run.sh --list shows them)" >&2; exit 2 ;;
esac
