#!/usr/bin/env bash
# The long form of the crash test (issue #13): a real `warren` (release
# build) under load — four publishers with confirms into durable queues
# (plain, paged out, priority, TTL dead-lettering into a DLQ), consumers
# acking in transactions and outside them — killed with SIGKILL at a random
# moment, CYCLES times, restarted on the same data and checked each time: no
# confirmed message lost, no committed ack back, no duplicate within a
# queue, publish order kept per publisher (interop/src/bin/crash_load).
# Then the special kills: during a compaction, during queue.delete of a deep
# queue, during a vhost deletion (ROUNDS each).
#
#   interop/crash-cycles.sh [CYCLES]          # default 100
#
# Environment: ROUNDS (special kills per kind, default 3; 0 skips them),
# DEEP_MB (size of the deep queue / vhost, default 300), NO_BUILD=1 (use the
# binaries already built), CARGO_TARGET_DIR (where they are), CRASH_DIR
# (data directories; default under $TMPDIR). Exit status 0 only if every
# check passed; a violation keeps the data directory and says where.
#
# CI runs the short form (one cycle) in `cargo test` (tests/durability.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-100}
rounds=${ROUNDS:-3}
deep_mb=${DEEP_MB:-300}
target=${CARGO_TARGET_DIR:-target}
dir=${CRASH_DIR:-${TMPDIR:-/tmp}/warren-crash-$$}
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --bin warren --bin warrenctl
  cargo build --release -p warren-interop --bin crash_load
fi
bin="$target/release"
status=0
"$bin/crash_load" cycles --warren "$bin/warren" --dir "$dir" --cycles "$cycles" || status=1
if [ "$rounds" -gt 0 ]; then
  for kind in compaction queue-delete vhost-delete; do
    echo
    "$bin/crash_load" special --warren "$bin/warren" --dir "$dir" --kind "$kind" \
      --rounds "$rounds" --deep-mb "$deep_mb" || status=1
  done
fi
exit $status
