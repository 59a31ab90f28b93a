#!/usr/bin/env bash
# Idle RPC against the floor relay, with the relay placed as the broker is.
#
# On a 2-vCPU machine the scheduler tends to run one of the floor relay's
# two threads on the client's vCPU: that hop is then a wake-up on the same
# vCPU, with no inter-processor interrupt to an idle vCPU. A broker's worker,
# which serves every connection, settles on the other vCPU, so both of its
# hops wake an idle vCPU. Each round runs `warren-perf --scenario rpc
# --floor` (6 s per phase) in each mode, with direct reply-to and then with
# a reply queue:
#   free     nothing pinned (what floor.py measures);
#   matched  the client on CPU 1 and the relay on CPU 0, off the client's
#            vCPU as the broker's busy worker is found to be; the broker
#            itself is left free (pinning both its workers to one vCPU
#            makes them preempt each other: p99 up to 0.88 ms).
# Usage: interop/bench/rpc_placement.sh [rounds]
# Needs a release build (CARGO_TARGET_DIR or target/), taskset, pgrep, nc.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
TARGET=${CARGO_TARGET_DIR:-target}
BROKER=$TARGET/release/warren
PERF=$TARGET/release/warren-perf
PORT=${PORT:-5679}
for tool in taskset pgrep nc; do
  command -v "$tool" >/dev/null || { echo "rpc_placement.sh needs $tool" >&2; exit 1; }
done
for bin in "$BROKER" "$PERF"; do
  [ -x "$bin" ] || { echo "missing $bin (cargo build --release --bins)" >&2; exit 1; }
done
if nc -z 127.0.0.1 "$PORT" 2>/dev/null; then
  echo "something already listens on $PORT (set PORT)" >&2
  exit 1
fi
DATA=$(mktemp -d)
pid="" ppid="" failed=""
cleanup() {
  [ -n "$ppid" ] && kill "$ppid" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  if [ -n "$failed" ]; then echo "logs kept in $DATA" >&2; else rm -rf "$DATA"; fi
}
trap cleanup EXIT

run() { # mode, extra args
  local mode=$1 args=$2 pin_client="" child="" label=$1
  if [ "$mode" = matched ]; then pin_client="taskset -c 1"; fi
  rm -rf "$DATA/d"
  WARREN_DATA_DIR=$DATA/d WARREN_LISTEN=127.0.0.1:$PORT WARREN_ADMIN_LISTEN=127.0.0.1:0 \
    WARREN_METRICS_LISTEN=127.0.0.1:0 "$BROKER" >"$DATA/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do nc -z 127.0.0.1 "$PORT" 2>/dev/null && break; sleep 0.1; done
  if ! kill -0 "$pid" 2>/dev/null || ! nc -z 127.0.0.1 "$PORT" 2>/dev/null; then
    failed=1
    echo "the broker did not start:" >&2
    tail -5 "$DATA/broker.log" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  $pin_client timeout 120 "$PERF" --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --scenario rpc $args \
    -z 6 --broker-pid "$pid" --floor >"$DATA/perf.log" 2>&1 &
  ppid=$!
  if [ "$mode" = matched ]; then
    # The relay is a child process of warren-perf (itself a child of
    # `timeout`), started after the broker's phase: move its threads (and
    # any it starts) to the broker's vCPU.
    for _ in $(seq 600); do
      local perf_pid
      perf_pid=$(pgrep -P "$ppid" | head -1 || true)
      [ -n "$perf_pid" ] && child=$(pgrep -P "$perf_pid" | head -1 || true)
      if [ -n "$child" ]; then
        for _ in 1 2 3; do
          for t in /proc/"$child"/task/*; do taskset -p -c 0 "$(basename "$t")" >/dev/null 2>&1 || true; done
          sleep 0.2
        done
        break
      fi
      sleep 0.05
    done
    if [ -z "$child" ]; then
      echo "the relay was not found: this matched run is not pinned" >&2
      label="matched (NOT pinned)"
    fi
  fi
  wait "$ppid" || true
  ppid=""
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  local w f ratio
  w=$(grep -m1 '^latency' "$DATA/perf.log" | sed 's/,.*p99 / \/ /; s/, p99.9.*//; s/latency p50 //' || true)
  f=$(grep -m1 '^  latency' "$DATA/perf.log" | sed 's/,.*p99 / \/ /; s/, p99.9.*//; s/  latency p50 //' || true)
  ratio=$(grep -o 'latency p50 [0-9.]*×, p99 [0-9.]*×' "$DATA/perf.log" | sed 's/latency //' || true)
  if [ -z "$w" ] || [ -z "$f" ]; then
    failed=1
    echo "warren-perf did not report both phases:" >&2
    tail -5 "$DATA/perf.log" >&2
  fi
  echo "| $label | ${args:-reply queue} | ${w:-n/a} | ${f:-n/a} | ${ratio:-n/a} |"
}

echo "| placement | scenario | Warren p50 / p99 | floor p50 / p99 | Warren ÷ floor |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
  for mode in free matched; do
    run "$mode" --direct-reply-to
    run "$mode" ""
  done
done
# A phase that reported nothing fails the script (its logs are kept).
[ -z "$failed" ]
