#!/usr/bin/env bash
# Delayed messages at scale: a release `warren` on a fresh data directory,
# `warren-perf --scenario delayed` against it (fill, then probes beside
# ordinary traffic), Warren's RSS sampled every 0.5 s. Prints the scenario's
# summary and the RSS before, at the end of the fill and at its peak.
#
#   interop/bench/delayed_scale.sh [pending] [background msg/s per producer] [probe delay ms]
#   interop/bench/delayed_scale.sh 10000000 50000 1000     # the README's figures
#
# Needs `cargo build --release --bins` (done here unless NO_BUILD=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
pending=${1:-1000000}
rate=${2:-50000}
delay=${3:-1000}
duration=${DURATION:-30}
[ "${NO_BUILD:-}" = 1 ] || cargo build --release --bins
bin=${CARGO_TARGET_DIR:-target}/release
. interop/bench/warren_rss.sh
"$bin/warren-perf" --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --scenario delayed \
  --backlog "$pending" --producers 2 --consumers 2 --queues 2 --rate "$rate" \
  --probe-rate 1000 --delay-ms "$delay" --duration "$duration" 2>&1 | tee /dev/stderr | tail -1 >/dev/null
echo "data directory: $(du -sh "$data" | cut -f1)"
awk 'NR==1 {first=$2} {if ($2>max) max=$2; last=$2} END {
  printf "warren RSS: %.0f MiB at start, %.0f MiB at the end, %.0f MiB peak\n", first/1024, last/1024, max/1024 }' "$rss_log"
