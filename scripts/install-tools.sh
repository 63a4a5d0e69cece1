#!/usr/bin/env bash
# Installs the load tools the crosscheck compares echo-client with: wrk and h2load (Debian
# packages) and oha (cargo), and curl (peers/test_tls.py's HTTPS client). Idempotent; a tool that cannot be installed is reported and the
# crosscheck then skips it with a notice. Usage: scripts/install-tools.sh [--no-oha]
set -uo pipefail

want_oha=1
[ "${1:-}" = "--no-oha" ] && want_oha=0

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    echo "installing ${missing[*]} (apt-get)"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        echo "notice: could not install ${missing[*]}; the crosscheck will skip them" >&2
    fi
fi

if [ "$want_oha" = 1 ] && ! command -v oha >/dev/null 2>&1; then
    echo "installing oha (cargo install oha --locked; a few minutes)"
    if ! cargo install oha --locked --quiet; then
        echo "notice: could not install oha; the crosscheck will skip it" >&2
    fi
fi

for tool in wrk h2load oha curl; do
    printf '%-7s %s\n' "$tool" "$(command -v "$tool" || echo 'not installed')"
done
exit 0
