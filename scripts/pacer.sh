#!/usr/bin/env bash
# The open-loop pacer's precision: echo-client at fixed rates against the pinned tcp reference
# server (the cheapest echo, so the client is what is measured), for each client binary given.
# Prints per run: achieved rate, send lag (how long after its intended instant each message
# left: p50/p99/max), sends late by the client (> 100 µs on a free connection), sends held back
# by an unanswered echo, uncorrected and corrected p99, the client's CPU (the load's, then the
# pacer's idle busy-wait, both as fractions of the window), and CPU steal.
# Server pinned to CPU 0 (--threads 1), client to CPU 1 (-t 1). Binaries alternate per rate.
# Usage: scripts/pacer.sh [DURATION] [RATE:CONNECTIONS ...] [-- CLIENT_BINARY ...]
#        (defaults: 5s 10000:16 30000:64 50000:64; target/release/echo-client)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
shift || true
loads=() clients=()
while (($#)); do
    if [[ $1 == -- ]]; then shift; clients=("$@"); break; fi
    loads+=("$1"); shift
done
((${#loads[@]})) || loads=(10000:16 30000:64 50000:64)
((${#clients[@]})) || clients=(target/release/echo-client)
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "echo-client -d $duration --warmup 1s at fixed rates against echo-server tcp"
echo
echo "| client | rate | conns | rt/s | send lag p50 | p99 | max | late (client) | held (server) | p99 | corrected p99 | client CPU | idle spin | steal |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for load in "${loads[@]}"; do
    rate=${load%%:*} connections=${load##*:}
    for client in "${clients[@]}"; do
        exec_line=$(target/release/echo-harness exec --bin-dir target/release tcp -- \
            "$client" "{url}" -t 1 -c "$connections" --rate "$rate" -d "$duration" --warmup 1s \
            --quiet --no-progress --json "$work/run.json" | sed -n 's/^ECHOBENCH_EXEC //p')
        python3 - "$work/run.json" "$client" "$exec_line" <<'EOF'
import json, sys
r, client, line = json.load(open(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3])
s, lat, c = r["summary"], r["latency"], r["client"]
us = lambda ns: f"{ns / 1000:,.1f} µs"
lag = lat.get("send_lag")
lag_cells = [us(lag[k]) for k in ("p50", "p99", "max")] if lag else ["n/a"] * 3
pacer_late = s.get("pacer_late_sends")
rts = max(s["round_trips"], 1)
late = f"{pacer_late / rts:.2%}" if pacer_late is not None else "n/a"
print(f"| {client} | {r['config']['rate']:,.0f} | {r['config']['connections']} | "
      f"{s['round_trips_per_s']:,.0f} | {' | '.join(lag_cells)} | {late} | {s['late_sends'] / rts:.2%} | "
      f"{us(lat['round_trip']['p99'])} | {us(lat['corrected']['p99'])} | {c['utilization']:.2f} | "
      f"{c.get('pacer_spin_s', 0) / r['measured_s']:.2f} | {line['steal_percent'] or 0:.2f}% |")
EOF
    done
done
