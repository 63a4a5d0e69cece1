#!/usr/bin/env bash
# Coordinated omission, measured: echo-client in open-loop mode (--rate) against the hyper
# reference server, once as is and once with the server stalling for STALL every second.
# Prints, for each, the latency measured from each message's intended send time (corrected)
# beside the latency from its actual send (uncorrected) and how many sends ran late.
# Server pinned to CPU 0 (--threads 1), client to CPU 1 (-t 1).
# Usage: scripts/open-loop-stall.sh [DURATION] [RATE] [STALL] [CONNECTIONS]
#        (defaults: 10s 10000 100ms 64)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
rate=${2:-10000}
stall=${3:-100ms}
connections=${4:-64}
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_one() { # label, then extra server flags
    local label=$1 server_args=() exec_line
    shift
    for flag in "$@"; do server_args+=("--server-arg=$flag"); done
    # echo-harness exec: the pinned server session every harness measurement uses (start,
    # ready line, one echo checked, clean stop), the client on the other CPU, steal recorded.
    exec_line=$(target/release/echo-harness exec --bin-dir target/release --server-log "$work/server.log" \
        hyper "${server_args[@]}" -- target/release/echo-client "{url}" -t 1 -c "$connections" \
        --rate "$rate" -d "$duration" --warmup 1s --quiet --no-progress --json "$work/$label.json" |
        sed -n 's/^ECHOBENCH_EXEC //p')
    python3 - "$work/$label.json" "$label" "$exec_line" <<'EOF'
import json, sys
report, label = json.load(open(sys.argv[1])), sys.argv[2]
steal = f"{json.loads(sys.argv[3])['steal_percent'] or 0:.2f}"
s, lat = report["summary"], report["latency"]
def row(kind, h):
    us = lambda ns: f"{ns / 1000:,.0f} µs"
    print(f"| {label} | {kind} | {s['round_trips_per_s']:,.0f} | {s['late_sends']:,} | "
          f"{us(h['p50'])} | {us(h['p99'])} | {us(h['p999'])} | {us(h['max'])} | {steal}% |")
row("corrected (from intended send)", lat["corrected"])
row("uncorrected (from actual send)", lat["round_trip"])
EOF
}

echo "echo-client --rate $rate -c $connections -d $duration against echo-server hyper"
echo
echo "| server | latency | rt/s | late sends | p50 | p99 | p99.9 | max | steal |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
run_one "steady"
run_one "stalls ${stall} every 1s" --stall-every 1s --stall-for "$stall"
