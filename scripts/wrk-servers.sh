#!/usr/bin/env bash
# wrk -t1 -c64 against the hyper and axum reference servers, GET / and POST /echo (32 B),
# server pinned to CPU 0 (--threads 1), wrk to CPU 1, interleaved rounds (hyper, axum, hyper,
# axum, ...) so drift does not favour either. Prints one TSV row per run, with the machine's
# CPU steal over that run from /proc/stat. Usage: scripts/wrk-servers.sh [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-10s}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p echo-servers --bin echo-server
bin=target/release/echo-server

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() { # impl mode
    local impl=$1 mode=$2 url s0 t0 s1 t1 json script
    start_server "$log" "$bin" "$impl"
    url=${SERVER_URL%/echo}
    script=scripts/wrk/get.lua; [ "$mode" = post ] && script=scripts/wrk/post-echo.lua
    read -r s0 t0 < <(jiffies)
    json=$(taskset -c 1 wrk -t1 -c64 -d"$duration" -s "$script" "$url/" | sed -n 's/^ECHOBENCH_JSON //p')
    read -r s1 t1 < <(jiffies)
    stop_server
    printf '%s\t%s\t%s\t%s\n' "$impl" "$mode" "$json" "$(steal_between "$s0" "$t0" "$s1" "$t1")"
}

printf 'impl\tmode\twrk_json\tsteal_pct\n'
for _ in $(seq "$rounds"); do
    for mode in get post; do
        for impl in hyper axum; do run_one "$impl" "$mode"; done
    done
done
