#!/usr/bin/env bash
# Is a change to echo-client a regression? Two echo-client binaries, A and B, alternate (A B A
# B ...) against one pinned hyper server in an `echo-harness exec` session: each round runs
# both closed loop (-c 64, what a saturated race for the cores gives) and at a fixed rate
# (--rate RATE, where the client's CPU per round trip reproduces), 5 s after a 1 s warmup,
# one thread on the client CPU. Prints one row per binary and mode: median throughput, median
# client CPU per round trip (with its range), max steal. Reports are kept in OUT.
# Usage: scripts/client-ab.sh A_CLIENT B_CLIENT [ROUNDS] [RATE] [OUT]
#        (defaults: 4 rounds, 30000/s, target/client-ab)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/client-ab.sh A_CLIENT B_CLIENT [ROUNDS] [RATE] [OUT]" >&2; exit 2; }
a=$(realpath "$1"); b=$(realpath "$2")
rounds=${3:-4}; rate=${4:-30000}; out=${5:-target/client-ab}
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "Error: $bin is not an executable" >&2; exit 2; }; done
mkdir -p "$out"; out=$(realpath "$out")
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness

# The command exec runs on the client CPU: every round, A then B, closed loop then fixed rate.
rounds_script=$(mktemp); trap 'rm -f "$rounds_script"' EXIT
cat >"$rounds_script" <<'SH'
url=$1 a=$2 b=$3 rounds=$4 rate=$5 out=$6
for i in $(seq "$rounds"); do
    for side in A B; do
        bin=$a; [ "$side" = B ] && bin=$b
        "$bin" "$url" -t 1 -c 64 -d 5s --warmup 1s --quiet --no-progress --json "$out/closed-$side-$i.json"
        "$bin" "$url" -t 1 -c 64 --rate "$rate" -d 5s --warmup 1s --quiet --no-progress --json "$out/rate-$side-$i.json"
    done
done
SH
target/release/echo-harness exec --bin-dir target/release hyper -- \
    bash "$rounds_script" "{url}" "$a" "$b" "$rounds" "$rate" "$out" | grep '^ECHOBENCH_EXEC'
python3 - "$out" "$rounds" "$a" "$b" <<'PY'
import json, statistics, sys
out, rounds, a, b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"A = {a}\nB = {b}\n")
print("| mode | side | rt/s (median) | client CPU µs/rt (median) | range | max steal |")
print("|---|---|---:|---:|---:|---:|")
for mode in ["closed", "rate"]:
    for side in "AB":
        reports = [json.load(open(f"{out}/{mode}-{side}-{i}.json")) for i in range(1, rounds + 1)]
        rps = [r["summary"]["round_trips_per_s"] for r in reports]
        cpu = [r["client"]["cpu_us_per_round_trip"] for r in reports]
        steal = max(r["client"]["steal_percent"] or 0 for r in reports)
        print(f"| {mode} | {side} | {statistics.median(rps):,.0f} | {statistics.median(cpu):.2f} | "
              f"{min(cpu):.2f}-{max(cpu):.2f} | {steal:.2f}% |")
PY
