#!/usr/bin/env bash
# Streams side by side: `warren-perf --scenario stream` (append N messages
# of 16 B without confirms, then replay them all from `first` with a
# prefetch of 10,000, acking every 1,000) against a release `warren` on a
# fresh data directory, whose RSS is sampled every 0.5 s, and then, with
# the same options, against a RabbitMQ at $RABBITMQ_URL if one answers
# there (streams are in its core since 3.9). Each broker runs alone.
#
#   interop/bench/stream_side_by_side.sh [messages] [rounds]
#   interop/bench/stream_side_by_side.sh 5000000 3       # the README's table
#   interop/bench/stream_side_by_side.sh 100000000 1     # flat memory at 100 M (9 GB of disk)
#
# Needs `cargo build --release --bins` (done here unless NO_BUILD=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-5000000}
rounds=${2:-3}
rabbit=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
[ "${NO_BUILD:-}" = 1 ] || cargo build --release --bins
bin=${CARGO_TARGET_DIR:-target}/release
opts=(--scenario stream --backlog "$messages" -x 1 -y 1 -Q 10000 --multi-ack-every 1000)

. interop/bench/warren_rss.sh
for r in $(seq "$rounds"); do
  echo "== Warren, round $r"
  "$bin/warren-perf" --uri "amqp://guest:guest@127.0.0.1:$port/%2f" "${opts[@]}" 2>&1 | grep -E 'appended|replayed'
done
awk '{if ($2>max) max=$2; last=$2} END {
  printf "warren RSS: %.0f MiB at the end, %.0f MiB peak\n", last/1024, max/1024 }' "$rss_log"
kill $pid
wait $pid 2>/dev/null || true

host_port=$(echo "$rabbit" | sed -E 's#.*@([^/]+)/.*#\1#')
if (exec 3<>"/dev/tcp/${host_port%:*}/${host_port#*:}") 2>/dev/null; then
  for r in $(seq "$rounds"); do
    echo "== RabbitMQ at $host_port, round $r"
    "$bin/warren-perf" --uri "$rabbit" "${opts[@]}" 2>&1 | grep -E 'appended|replayed'
  done
else
  echo "no RabbitMQ at $host_port: start one (rabbitmq-server &) to compare"
fi
