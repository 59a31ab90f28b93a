#!/usr/bin/env bash
# CI smoke test for the side-by-side benchmark: a --quick run against Warren
# only (no RabbitMQ needed), about a minute. Extra arguments go to
# side_by_side.py (e.g. --no-build when the release binaries are fresh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 "$here/side_by_side.py" --quick --brokers warren \
    --out-md "$out/report.md" --out-json "$out/results.json" "$@"
# The exit status above already fails on any Warren failure; also check the files.
python3 - "$out/results.json" <<'PY'
import json, sys
raw = json.load(open(sys.argv[1]))
runs = [r for per in raw["results"].values() for r in per.get("warren", [])]
ok = [r for r in runs if r["ok"]]
assert ok, "no successful Warren run"
print(f"smoke: {len(ok)}/{len(runs)} Warren runs ok", file=sys.stderr)
PY
grep -q '| scenario | metric |' "$out/report.md"
# The floor script, briefly: three scenarios over Warren and the relay
# (and the disk's fdatasync floor for confirms).
python3 "$here/floor.py" --no-build --no-rabbitmq --only rpc-queue,one-to-one,confirm-1 --duration 1 \
    --warmup 0.5 --out-md "$out/floor.md"
grep -q '| latency p99 |' "$out/floor.md"
grep -q 'fdatasyncs at p99' "$out/floor.md"
grep -q 'CPU per message' "$out/floor.md"
