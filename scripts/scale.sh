#!/usr/bin/env bash
# More connections than one process may open: N concurrent connections (TCP, then WebSocket)
# held for DURATION at RATE_PER_CONN messages per connection per second, connects paced, against
# an echo-server of several SO_REUSEPORT processes pinned to the server CPU, from echo-client
# worker processes pinned to the client CPU, spread over source addresses 127.0.0.2-...
# Prints, per protocol: errors, connections opened/closed inside the window, round trips, the
# latency (open loop, corrected and from the send), and both sides' memory per connection.
# Usage: scripts/scale.sh [CONNECTIONS] [DURATION] [RATE_PER_CONN] [OUT_DIR]
#        (defaults: 100000, 60s, 1, a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-100000}
duration=${2:-60s}
per_conn=${3:-1}
out=${4:-}
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
if [[ -z $out ]]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

# 20,000 open files per process (a hard limit here): at most 16,000 connections per process
# on either side leaves room for the rest. About 28,000 ephemeral ports per source and
# destination pair, but connect() searches for a free port, and that search slows as the
# range fills (100,000 connections over 5 sources took 120 s to open at 5,000/s requested):
# one source address per 5,000 connections keeps each range under a fifth full.
per_process=16000
processes=$(((connections + per_process - 1) / per_process))
sources=$(((connections + 4999) / 5000))
last_source="127.0.0.$((1 + sources))"
rate=$(python3 -c "print(max(int($connections * $per_conn), 1))")

for server in tcp tungstenite; do
    # tungstenite reads into a 4 KiB buffer instead of its 128 KiB default: at 100,000
    # connections the default would be 12 GiB of read buffers.
    server_args=(--server-arg=--processes="$processes")
    [[ $server == tungstenite ]] && server_args+=(--server-arg=--ws-read-buffer=4096)
    echo "== $server: $connections connections, $rate/s, $duration; $processes server and" \
        "$processes client processes, sources 127.0.0.2-$last_source" >&2
    target/release/echo-harness exec --bin-dir target/release --limit 20m "${server_args[@]}" \
        "$server" -- target/release/echo-client "{url}" -c "$connections" --rate "$rate" \
        -d "$duration" --processes "$processes" --source "127.0.0.2-$last_source" \
        --connect-rate 5000 --warmup 2s --warmup-timeout 300s \
        --quiet --no-progress --json "$out/$server.json" |
        sed -n 's/^ECHOBENCH_EXEC //p' >"$out/$server.exec.json"
done

python3 - "$out" "$connections" <<'EOF'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
ms = lambda ns: f"{ns / 1e6:.2f} ms"
for server in ("tcp", "tungstenite"):
    r = json.load(open(f"{out}/{server}.json"))
    e = json.load(open(f"{out}/{server}.exec.json"))
    s, lat = r["summary"], r["latency"]
    c, u = lat["corrected"], lat["round_trip"]
    print(f"{server}: {r['config']['connections']:,} connections over {(r.get('workers') or {'count': 1})['count']} "
          f"client processes, {s['round_trips']:,} round trips in {r['measured_s']:.1f} s "
          f"({s['round_trips_per_s']:,.0f}/s), errors {s['errors']}, opened/closed in the "
          f"window {s['connections_opened']}/{s['connections_closed']}, late sends "
          f"{s.get('late_sends')} (pacer {s.get('pacer_late_sends')}); steal "
          f"{e['steal_percent']:.2f}%")
    print(f"  latency corrected p50 {ms(c['p50'])}, p99 {ms(c['p99'])}, max {ms(c['max'])}; "
          f"from the send p50 {ms(u['p50'])}, p99 {ms(u['p99'])}, max {ms(u['max'])}")
    server_kib = (e["server_peak_rss_bytes"] - e["server_idle_rss_bytes"]) / 1024 / n
    client_kib = e["command_peak_rss_bytes"] / 1024 / n
    print(f"  memory per connection: server {server_kib:.2f} KiB (peak {e['server_peak_rss_bytes'] / 2**20:,.0f} MiB"
          f" - idle {e['server_idle_rss_bytes'] / 2**20:,.0f} MiB), client {client_kib:.2f} KiB"
          f" (peak of all its processes {e['command_peak_rss_bytes'] / 2**20:,.0f} MiB)")
    client = r["client"]
    print(f"  CPU: server (CPU {e['server_cpus']}) {e['server_cpu_s'] / e['wall_s']:.0%} of its core over the"
          f" whole {e['wall_s']:.0f} s (ramp and teardown included); client (CPU {e['client_cpus']})"
          f" {client['utilization']:.0%} of its core in the window, {client['cpu_us_per_round_trip']:.1f} us"
          f" per round trip{', saturated' if r['flags']['client_saturated'] else ''}")
EOF
