#!/usr/bin/env bash
# Does the headline detect a real, small difference, and only where it is? Two runs of the same
# matrix (hyper, axum, tcp: capacity under the default SLO at 64 connections, and the cost at
# 10,000/s), identical but for one known handicap in the second: hyper burns HANDICAP of CPU
# before every echo (echo-server --echo-cost). `echo-harness compare` then judges every cell;
# hyper alone should come out costlier (and, if the handicap moves its capacity beyond the
# noise, lower capacity), the others with no significant difference.
# Usage: scripts/sensitivity.sh [HANDICAP] [TRIALS] [OUT]   (defaults: 750ns, 5, target/sensitivity;
# 750ns is about 5% of hyper's CPU per round trip at 10,000/s with the default matrix's settings)
set -euo pipefail
cd "$(dirname "$0")/.."
handicap=${1:-750ns}; trials=${2:-5}; out=${3:-target/sensitivity}
mkdir -p "$out"; out=$(realpath "$out")
cargo build --release --quiet -p echo-server -p echo-client -p echo-harness

config() { # $1: extra arguments for hyper
    cat <<TOML
[run]
trials = $trials
halt_poll = "200us"   # as the default matrix measures
pacer_spin = "250us"

[search]
start = 5000
confirm = 2

[[server]]
name = "hyper"
command = ["{bin}/echo-server", "hyper", "--addr", "{addr}", "--threads", "{threads}"$1]
protocol = "http"

[[server]]
name = "axum"
command = ["{bin}/echo-server", "axum", "--addr", "{addr}", "--threads", "{threads}"]
protocol = "http"

[[server]]
name = "tcp"
command = ["{bin}/echo-server", "tcp", "--addr", "{addr}", "--threads", "{threads}"]
protocol = "tcp"

[[matrix]]
connections = [64]
capacity = true

[[matrix]]
connections = [64]
rate = [10000]
TOML
}
config "" >"$out/baseline.toml"
config ", \"--echo-cost\", \"$handicap\"" >"$out/handicap.toml"
for label in baseline handicap; do
    target/release/echo-harness run --config "$out/$label.toml" --out "$out" --label "$label" \
        --bin-dir target/release >/dev/null
done
a=$(ls -d "$out"/*-baseline | tail -1); b=$(ls -d "$out"/*-handicap | tail -1)
target/release/echo-harness compare "$a" "$b"
