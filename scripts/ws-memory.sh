#!/usr/bin/env bash
# echo-client's memory per open WebSocket connection: its peak RSS holding N mostly idle
# connections (one message per connection every 10 s, connects paced at 2,500/s) against the
# pinned tungstenite server, minus its peak RSS holding one, divided by N - 1.
# Usage: scripts/ws-memory.sh [CONNECTIONS] [CLIENT_BINARY]   (defaults: 15000, this build)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-15000}
client=${2:-target/release/echo-client}
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

peak_rss_kib() { # connections: runs the client under echo-harness exec, samples its RSS
    local n=$1
    target/release/echo-harness exec --bin-dir target/release tungstenite -- \
        bash -c 'c=$1; shift; "$@" & pid=$!; peak=0
                 while kill -0 $pid 2>/dev/null; do
                     rss=$(awk "/^VmRSS/ {print \$2}" /proc/$pid/status 2>/dev/null || echo 0)
                     ((rss > peak)) && peak=$rss; sleep 0.2
                 done; wait $pid; echo "PEAK_RSS_KIB $peak"' _ "$n" \
        "$client" "{url}" -t 1 -c "$n" --rate "$(python3 -c "print(max($n / 10, 1))")" \
        --connect-rate 2500 --warmup 1s -d 3s --quiet --no-progress --json "$work/run-$n.json" |
        sed -n 's/^PEAK_RSS_KIB //p'
}
one=$(peak_rss_kib 1)
many=$(peak_rss_kib "$connections")
python3 - "$one" "$many" "$connections" "$work/run-$connections.json" <<'EOF'
import json, sys
one, many, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(sys.argv[4]))
print(f"peak RSS: {one:,} KiB with 1 connection, {many:,} KiB with {n:,} "
      f"({r['summary']['errors']} errors, {r['summary']['round_trips']:,} round trips)")
print(f"per connection: {(many - one) / (n - 1):.2f} KiB; total / connections: {many / n:.2f} KiB")
EOF
