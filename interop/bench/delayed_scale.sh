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
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/warren" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --data-dir "$data" --log-level warn &
pid=$!
rss_log=$(mktemp)
trap 'kill $pid 2>/dev/null; kill ${sampler:-} 2>/dev/null; rm -rf "$data" "$rss_log"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(while kill -0 $pid 2>/dev/null; do
  echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' /proc/$pid/status)" >>"$rss_log"
  sleep 0.5
done) &
sampler=$!
"$bin/warren-perf" --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --scenario delayed \
  --backlog "$pending" --producers 2 --consumers 2 --queues 2 --rate "$rate" \
  --probe-rate 1000 --delay-ms "$delay" --duration "$duration" 2>&1 | tee /dev/stderr | tail -1 >/dev/null
echo "data directory: $(du -sh "$data" | cut -f1)"
awk 'NR==1 {first=$2} {if ($2>max) max=$2; last=$2} END {
  printf "warren RSS: %.0f MiB at start, %.0f MiB at the end, %.0f MiB peak\n", first/1024, last/1024, max/1024 }' "$rss_log"
