#!/usr/bin/env bash
# --pipeline, measured: echo-client closed loop at K messages in flight per connection against
# the pinned tcp, tungstenite and hyper reference servers, and h2load --h1 -m K (HTTP/1.1
# pipelining) against hyper in the same run as the peer. Server on CPU 0 (--threads 1),
# clients on CPU 1 (-t 1). Needs h2load (Debian nghttp2-client) for the peer rows.
# Usage: scripts/pipeline.sh [DURATION] [CONNECTIONS] [K ...]   (defaults: 5s 16 1 16)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
connections=${2:-16}
shift 2 || shift $#
depths=("$@")
((${#depths[@]})) || depths=(1 16)
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 32 /dev/zero | tr '\0' 'x' >"$work/body"
secs=${duration%s}

echo "closed loop, -c $connections, 32-byte messages, $duration after a 1s warmup"
echo
echo "| server | client | in flight per connection | rt/s | p50 | p99 | client CPU µs/rt | steal |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for server in tcp tungstenite hyper; do
    for k in "${depths[@]}"; do
        line=$(target/release/echo-harness exec --bin-dir target/release "$server" -- \
            target/release/echo-client "{url}" -t 1 -c "$connections" -d "$duration" --warmup 1s \
            --pipeline "$k" --quiet --no-progress --json "$work/run.json" | sed -n 's/^ECHOBENCH_EXEC //p')
        python3 - "$work/run.json" "$server" "$k" "$line" <<'EOF'
import json, sys
r, server, k, line = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
s, lat, c = r["summary"], r["latency"]["round_trip"], r["client"]
assert s["errors"] == 0, r["errors"]
print(f"| {server} | echo-client | {k} | {s['round_trips_per_s']:,.0f} | {lat['p50'] / 1000:,.0f} µs | "
      f"{lat['p99'] / 1000:,.0f} µs | {c['cpu_us_per_round_trip']:.2f} | {line['steal_percent'] or 0:.2f}% |")
EOF
        if [[ $server == hyper ]] && command -v h2load >/dev/null; then
            line=$(target/release/echo-harness exec --bin-dir target/release hyper -- \
                h2load --h1 -t 1 -c "$connections" -m "$k" -D "$secs" --warm-up-time 1 \
                -d "$work/body" "{url}" | tee "$work/h2load.txt" | sed -n 's/^ECHOBENCH_EXEC //p')
            python3 - "$work/h2load.txt" "$k" "$line" "$secs" <<'EOF'
import json, re, sys
text, k, line, secs = open(sys.argv[1]).read(), sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", text).group(2))
row = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
print(f"| hyper | h2load --h1 -m {k} | {k} | {done / secs:,.0f} | mean {row.group(3)} | n/a | n/a | "
      f"{line['steal_percent'] or 0:.2f}% |")
EOF
        fi
    done
done
