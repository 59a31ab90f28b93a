#!/usr/bin/env bash
# Idle RPC against the floor relay, with the relay placed as the broker is.
#
# On a 2-vCPU machine the scheduler tends to run one of the floor relay's
# two threads on the client's vCPU: that hop is then a wake-up on the same
# vCPU, with no inter-processor interrupt to an idle vCPU. A broker's worker,
# which serves every connection, settles on the other vCPU, so both of its
# hops wake an idle vCPU. This script runs `warren-perf --scenario rpc
# --floor` twice per mode:
#   free     nothing pinned (what floor.py measures);
#   matched  the client on CPU 1 and the relay on CPU 0, off the client's
#            vCPU as the broker's busy worker is found to be; the broker
#            itself is left free (pinning both its workers to one vCPU
#            makes them preempt each other: p99 0.85 ms).
# Usage: interop/bench/rpc_placement.sh [rounds]   (needs taskset, release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
TARGET=${CARGO_TARGET_DIR:-target}
BROKER=$TARGET/release/warren
PERF=$TARGET/release/warren-perf
PORT=${PORT:-5679}
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

run() { # mode, extra args
  local mode=$1 args=$2 pin_client="" pid ppid child
  if [ "$mode" = matched ]; then pin_client="taskset -c 1"; fi
  rm -rf "$DATA"/*
  WARREN_DATA_DIR=$DATA/d WARREN_LISTEN=127.0.0.1:$PORT WARREN_ADMIN_LISTEN=127.0.0.1:0 \
    WARREN_METRICS_LISTEN=127.0.0.1:0 "$BROKER" >"$DATA/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do nc -z 127.0.0.1 "$PORT" 2>/dev/null && break; sleep 0.1; done
  # shellcheck disable=SC2086
  $pin_client "$PERF" --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --scenario rpc $args -z 6 \
    --broker-pid "$pid" --floor >"$DATA/perf.log" 2>&1 &
  ppid=$!
  if [ "$mode" = matched ]; then
    # The relay is a child process started after the broker's run: move
    # its threads (and any it starts) to the broker's vCPU.
    for _ in $(seq 600); do
      child=$(pgrep -P "$ppid" || true)
      if [ -n "$child" ]; then
        for _ in 1 2 3; do
          for t in /proc/"$child"/task/*; do taskset -p -c 0 "$(basename "$t")" >/dev/null 2>&1 || true; done
          sleep 0.2
        done
        break
      fi
      sleep 0.05
    done
  fi
  wait "$ppid" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local w f
  w=$(grep -m1 '^latency' "$DATA/perf.log" | sed 's/,.*p99 / \/ /; s/, p99.9.*//; s/latency p50 //')
  f=$(grep -m1 '^  latency' "$DATA/perf.log" | sed 's/,.*p99 / \/ /; s/, p99.9.*//; s/  latency p50 //')
  echo "| $mode | ${args:-reply queue} | $w | $f | $(grep -o 'latency p50 [0-9.]*×, p99 [0-9.]*×' "$DATA/perf.log" | sed 's/latency //') |"
}

echo "| placement | scenario | Warren p50 / p99 (ms) | floor p50 / p99 (ms) | Warren ÷ floor |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
  for mode in free matched; do
    run "$mode" --direct-reply-to
    run "$mode" ""
  done
done
