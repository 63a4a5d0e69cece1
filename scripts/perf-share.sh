#!/usr/bin/env bash
# Where each load generator's CPU goes: `perf record -e cpu-clock` of the tool (one thread,
# CPU 1) over a closed-loop run against one `echo-server hyper --threads 1` (CPU 0), and the
# share of its samples in its own binary, the kernel and libc (`perf report --sort dso`).
#
#   scripts/perf-share.sh OUT ROUNDS SECONDS TOOL...
#
# TOOL is `wrk` or the path of an echo-client binary (several may be given, to compare
# builds); the tools alternate, ROUNDS times. Needs perf (Debian linux-perf) and wrk. Writes
# OUT/<round>-<n>.{perf.txt,out} and prints one line per run: tool, round trips/s, shares.
set -euo pipefail

out=${1:?usage: perf-share.sh OUT ROUNDS SECONDS TOOL...}
rounds=${2:?rounds}
seconds=${3:?seconds}
shift 3
[ $# -ge 1 ] || { echo "perf-share.sh: name at least one tool (wrk or an echo-client binary)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
server_bin=${ECHO_SERVER:-$here/../target/release/echo-server}
[ -x "$server_bin" ] || { echo "perf-share.sh: no echo-server at $server_bin (cargo build --release, or set ECHO_SERVER)" >&2; exit 2; }
for tool in "$@"; do
    [ "$tool" = wrk ] || [ -x "$tool" ] || { echo "perf-share.sh: $tool is neither wrk nor an executable" >&2; exit 2; }
done
mkdir -p "$out"
port=$((20000 + RANDOM % 20000))

taskset -c 0 "$server_bin" hyper --addr "127.0.0.1:$port" --threads 1 >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -s -o /dev/null -X POST --data x "http://127.0.0.1:$port/echo" && break
    sleep 0.05
done

steal() { awk '/^cpu /{print $9}' /proc/stat; }
total() { awk '/^cpu /{s=0; for(i=2;i<=9;i++) s+=$i; print s}' /proc/stat; }

for round in $(seq "$rounds"); do
    n=0
    for tool in "$@"; do
        n=$((n + 1))
        base="$out/$round-$n"
        steal0=$(steal); total0=$(total)
        if [ "$tool" = wrk ]; then
            taskset -c 1 perf record -q -e cpu-clock -o "$base.data" -- \
                wrk -t1 -c64 -d"${seconds}s" -s "$here/wrk/post-echo.lua" \
                "http://127.0.0.1:$port/echo" >"$base.out" 2>&1
            rate=$(awk '/Requests\/sec/{print $2}' "$base.out")
        else
            taskset -c 1 perf record -q -e cpu-clock -o "$base.data" -- \
                "$tool" "http://127.0.0.1:$port/echo" -c 64 -t 1 -d "${seconds}s" --warmup 0s \
                --no-progress --json "$base.json" >"$base.out" 2>&1
            rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["summary"]["round_trips_per_s"]))' "$base.json")
        fi
        steal1=$(steal); total1=$(total)
        perf report -q -i "$base.data" --sort dso --stdio 2>/dev/null >"$base.perf.txt"
        shares=$(awk '{printf "%s %s  ", $2, $1}' "$base.perf.txt" | head -c 400)
        stealpct=$(awk -v a="$steal0" -v b="$steal1" -v c="$total0" -v d="$total1" 'BEGIN{printf "%.2f", (d>c)?100*(b-a)/(d-c):0}')
        echo "round $round  $(basename "$tool")  ${rate} rt/s  steal ${stealpct}%  ${shares}"
        rm -f "$base.data"
    done
done
