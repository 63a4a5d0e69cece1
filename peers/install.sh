#!/usr/bin/env bash
# Installs what the peer servers and clients need, under target/peers/ only (never
# system-wide): the pinned Node packages into target/peers/node/node_modules (npm ci from the
# committed lockfile) and a Python venv at target/peers/venv with the pinned requirements.
# Idempotent: each half is redone only when its pins or its interpreter changed (a stamp file
# records what was installed), so a second run takes well under a second and changes nothing.
#
# Usage: peers/install.sh [--force]     (--force reinstalls both halves)
# Needs: node >= 20 with npm, and python3 >= 3.11 (override with PYTHON=/path/to/python3).
# ECHOBENCH_PEERS_PREFIX moves the install (default: target/peers at the repository root).
set -euo pipefail

peers=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${ECHOBENCH_PEERS_PREFIX:-$(dirname "$peers")/target/peers}
python=${PYTHON:-python3}
force=false
case "${1:-}" in
    "") ;;
    --force) force=true ;;
    *) echo "Error: unknown argument '$1' (usage: peers/install.sh [--force])" >&2; exit 2 ;;
esac

die() { echo "Error: $*" >&2; exit 1; }

# Prints a digest of everything that decides an install: the interpreter's version and the pin files.
fingerprint() { { "$1" --version 2>&1; cat "${@:2}"; } | sha256sum | cut -d' ' -f1; }

# True when DIR/.installed holds exactly WANT.
up_to_date() { ! $force && [[ -f $1/.installed && $(<"$1/.installed") == "$2" ]]; }

install_node() {
    local dir=$prefix/node want major
    command -v node >/dev/null && command -v npm >/dev/null || die "node and npm not found: install Node.js 20 or newer"
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || die "node $(node --version) is too old: the peers need Node.js 20 or newer"
    want=$(fingerprint node "$peers/node/package.json" "$peers/node/package-lock.json")
    if up_to_date "$dir" "$want" && [[ -d $dir/node_modules/ws ]]; then
        echo "node: up to date ($dir)"
        return
    fi
    echo "node: npm ci into $dir/node_modules"
    mkdir -p "$dir"
    rm -f "$dir/.installed"
    cp "$peers/node/package.json" "$peers/node/package-lock.json" "$dir/"
    # npm's own chatter (and its warnings about this machine's npmrc) goes to stderr.
    npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    echo "$want" >"$dir/.installed"
}

install_python() {
    local venv=$prefix/venv want
    command -v "$python" >/dev/null || die "$python not found: install Python 3.11 or newer (or set PYTHON)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$python" --version 2>&1) is too old: the peers need Python 3.11 or newer (websockets 17)"
    want=$(fingerprint "$python" "$peers/python/requirements.txt")
    if up_to_date "$venv" "$want" && [[ -x $venv/bin/python ]]; then
        echo "python: up to date ($venv)"
        return
    fi
    echo "python: fresh venv at $venv"
    # A fresh venv every time the pins change, so no package from an older pin set lingers.
    if [[ -e $venv ]]; then
        [[ -f $venv/pyvenv.cfg ]] || die "$venv exists and is not a venv: move it away"
        rm -rf "$venv"
    fi
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
        --no-deps --only-binary=:all: -r "$peers/python/requirements.txt" >&2
    "$venv/bin/python" -m pip check --disable-pip-version-check >&2 \
        || die "the pinned requirements are inconsistent (pip check above): regenerate requirements.txt"
    echo "$want" >"$venv/.installed"
}

install_node
install_python
