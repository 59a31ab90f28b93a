#!/usr/bin/env bash
# The long form of the crash test: runs tests/durability.rs's SIGKILL test
# (publishers with confirms and transactional consumers against a real
# `warren`, killed with SIGKILL mid-stream, restarted and checked: no
# confirmed message lost, no committed ack undone) CYCLES times in a row.
#
#   interop/crash-cycles.sh [CYCLES]    # default 50
#
# CI runs the short form (one cycle) as part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-50}
cargo test --release --test durability --no-run
for i in $(seq "$cycles"); do
  printf 'cycle %d/%d: ' "$i" "$cycles"
  cargo test --release --quiet --test durability confirmed_messages_survive_sigkill_and_acked_ones_stay_gone \
    -- --exact 2>&1 | grep -E "test result|panicked" || { echo "cycle $i failed"; exit 1; }
done
echo "crash cycles: $cycles passed, 0 failed"
