#!/bin/bash
P=/sys/module/haltpoll/parameters
for mode in "$@"; do
  case $mode in
    halt) echo 0 > $P/guest_halt_poll_ns; echo Y > $P/guest_halt_poll_allow_shrink;;
    hp200) echo 200000 > $P/guest_halt_poll_ns; echo Y > $P/guest_halt_poll_allow_shrink;;
    fix200) echo 200000 > $P/guest_halt_poll_ns; echo N > $P/guest_halt_poll_allow_shrink;;
    fix400) echo 400000 > $P/guest_halt_poll_ns; echo N > $P/guest_halt_poll_allow_shrink;;
  esac
  /work/main/target/release/echo-harness run --config /tmp/idle/cost.toml --out /tmp/idle/out2 --label $mode > /tmp/idle/$mode.log 2>&1 || true
done
echo 0 > $P/guest_halt_poll_ns; echo Y > $P/guest_halt_poll_allow_shrink
