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

# steal and total jiffies of the aggregate cpu line
jiffies() { awk '/^cpu /{t=0; for(i=2;i<=9;i++) t+=$i; print $9, t}' /proc/stat; }

run_one() { # impl mode
    local impl=$1 mode=$2 fifo url ready pid s0 t0 s1 t1 json script
    fifo=$(mktemp -u); mkfifo "$fifo"
    taskset -c 0 "$bin" "$impl" --threads 1 >"$fifo" 2>/dev/null &
    pid=$!
    read -r ready <"$fifo"; rm -f "$fifo"
    url=${ready#listening }
    url=${url%/echo}
    script=scripts/wrk/get.lua; [ "$mode" = post ] && script=scripts/wrk/post-echo.lua
    read -r s0 t0 < <(jiffies)
    json=$(taskset -c 1 wrk -t1 -c64 -d"$duration" -s "$script" "$url/" | sed -n 's/^ECHOBENCH_JSON //p')
    read -r s1 t1 < <(jiffies)
    kill -TERM "$pid"; wait "$pid" || true
    printf '%s\t%s\t%s\t%.2f\n' "$impl" "$mode" "$json" "$(awk -v a="$((s1-s0))" -v b="$((t1-t0))" 'BEGIN{print (b>0)?100*a/b:0}')"
}

printf 'impl\tmode\twrk_json\tsteal_pct\n'
for _ in $(seq "$rounds"); do
    for mode in get post; do
        for impl in hyper axum; do run_one "$impl" "$mode"; done
    done
done
