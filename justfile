# echobench: every routine task. `just` with no arguments lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list --unsorted

# Run every test in the workspace (the README's test command).
test:
    cargo test --workspace

# Exactly what CI checks on every change: formatting, lints on all targets, tests, benches once.
ci: fmt-check clippy test bench-check

# Fail if any file is not rustfmt-formatted.
fmt-check:
    cargo fmt --all -- --check

# Lints on every target with warnings as errors (lint levels live in [workspace.lints]).
clippy:
    cargo clippy --workspace --all-targets -- -D warnings

# Compile every criterion bench and run each benchmark once, without timing (a smoke test).
bench-check:
    cargo bench --workspace -- --test

# Run one reference server in release mode, e.g. `just serve hyper --threads 1`.
serve IMPL *ARGS:
    cargo run --release --quiet -p echo-server --bin echo-server -- {{IMPL}} {{ARGS}}

# Run the criterion micro-benchmarks (full timing; results under target/criterion/).
microbench *ARGS:
    cargo bench --workspace -- {{ARGS}}

# The default matrix (~5 min on 2 CPUs): capacity under the SLO, cost at 10,000/s, closed loop -> results/<date>-<host>-<sha>/.
bench *ARGS:
    cargo run --release --quiet -p echo-harness -- run {{ARGS}}

# The matrix in --quick mode (one trial of short runs, under a minute): a smoke test.
bench-quick *ARGS:
    cargo run --release --quiet -p echo-harness -- run --quick --out target/bench-quick {{ARGS}}

# Does run B reproduce run A? Capacity ratios to tcp within 3%, fixed-rate costs within 2%.
repro A B:
    cargo run --release --quiet -p echo-harness -- compare --repro {{A}} {{B}}

# Two runs, the second with hyper handicapped by HANDICAP of CPU per echo: is it flagged, alone?
sensitivity HANDICAP="750ns" TRIALS="5":
    scripts/sensitivity.sh {{HANDICAP}} {{TRIALS}}

# wrk -t1 -c64 against hyper and axum (GET / and POST /echo), pinned, interleaved rounds.
wrk-servers ROUNDS="3" DURATION="10s":
    scripts/wrk-servers.sh {{ROUNDS}} {{DURATION}}

# Open loop against hyper, steady and stalling: corrected vs uncorrected latency side by side.
open-loop-stall DURATION="10s" RATE="10000":
    scripts/open-loop-stall.sh {{DURATION}} {{RATE}}

# The open-loop pacer's precision at fixed rates against the pinned tcp server.
pacer DURATION="5s":
    scripts/pacer.sh {{DURATION}}

# --pipeline at 1 and 16 in flight per connection on tcp, tungstenite and hyper, beside h2load -m.
pipeline DURATION="5s":
    scripts/pipeline.sh {{DURATION}}

# echo-client's resident memory per open WebSocket connection at 15,000 connections.
ws-memory CONNECTIONS="15000":
    scripts/ws-memory.sh {{CONNECTIONS}}

# N connections (TCP, then WebSocket) held at RATE per connection per second: memory per connection, latency.
scale CONNECTIONS="100000" DURATION="60s" RATE="0.2":
    scripts/scale.sh {{CONNECTIONS}} {{DURATION}} {{RATE}}

# A/B two echo-client binaries against one pinned hyper server, closed loop and at a fixed rate.
client-ab A B ROUNDS="4" RATE="30000":
    scripts/client-ab.sh {{A}} {{B}} {{ROUNDS}} {{RATE}}

# Install the Node and Python peer servers and clients into target/peers/ (idempotent).
peers-install:
    peers/install.sh

# The reference servers and the peer frameworks side by side (peers/peers.toml, ~7 min).
bench-peers *ARGS: peers-install
    cargo run --release --quiet -p echo-harness -- run --config peers/peers.toml --label peers {{ARGS}}

# The peers over TLS beside hyper and tungstenite: handshake and round-trip cost (peers/peers-tls.toml, ~5 min).
bench-peers-tls *ARGS: peers-install
    cargo run --release --quiet -p echo-harness -- run --config peers/peers-tls.toml --label peers-tls {{ARGS}}

# echo-client against wrk, h2load, oha and the peer clients; fails on >15% disagreement with wrk.
crosscheck *ARGS: peers-install
    scripts/install-tools.sh
    cargo run --release --quiet -p echo-harness -- crosscheck {{ARGS}}

# Compare two result folders cell by cell (Welch's t-test over trials).
compare A B:
    cargo run --release --quiet -p echo-harness -- compare {{A}} {{B}}

# WebSocket conformance: Autobahn TestSuite cases 1-10 against every WebSocket server; fails on any FAILED.
conformance:
    conformance/install.sh
    python3 conformance/run.py
