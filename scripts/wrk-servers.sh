#!/usr/bin/env bash
# wrk -t1 -c64 against the hyper and axum reference servers, GET / and POST /echo (32 B),
# server pinned to CPU 0 (--threads 1), wrk to CPU 1 (both through `echo-harness exec`), interleaved rounds (hyper, axum, hyper,
# axum, ...) so drift does not favour either. Prints one TSV row per run, with the machine's
# CPU steal over that run from /proc/stat. Usage: scripts/wrk-servers.sh [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-10s}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() { # impl mode
    local impl=$1 mode=$2 out json steal script
    script=scripts/wrk/get.lua; [ "$mode" = post ] && script=scripts/wrk/post-echo.lua
    # echo-harness exec: the pinned server session every harness measurement uses; wrk runs
    # pinned to the client CPU and the ECHOBENCH_EXEC line carries the steal over its run.
    out=$(target/release/echo-harness exec --bin-dir target/release --server-log "$log" "$impl" -- \
        wrk -t1 -c64 -d"$duration" -s "$script" "{base}/")
    json=$(sed -n 's/^ECHOBENCH_JSON //p' <<<"$out")
    steal=$(sed -n 's/^ECHOBENCH_EXEC //p' <<<"$out" |
        python3 -c 'import json, sys; print("%.2f" % (json.load(sys.stdin)["steal_percent"] or 0))')
    printf '%s\t%s\t%s\t%s\n' "$impl" "$mode" "$json" "$steal"
}

printf 'impl\tmode\twrk_json\tsteal_pct\n'
for _ in $(seq "$rounds"); do
    for mode in get post; do
        for impl in hyper axum; do run_one "$impl" "$mode"; done
    done
done
