#!/usr/bin/env bash
# End-to-end browser test of Warren's web dashboard: starts a `warren` binary
# on free ports, drives Debian's Chromium through playwright-core and a real
# AMQP client (amqplib) against it. See interop/dashboard/README.md.
#
#   interop/dashboard/run.sh                     # uses target/debug/warren
#   WARREN_BIN=/path/to/warren interop/dashboard/run.sh
#
# Installs what it needs when missing:
#   - Chromium from Debian (apt-get; sudo when not root) if /usr/bin/chromium is absent
#   - playwright-core and amqplib from interop/dashboard/package.json (npm install)
# Screenshots go to $DASHBOARD_ARTIFACTS (default interop/dashboard/artifacts).
# DASHBOARD_TIMEOUT (seconds, default 180) bounds the whole test.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

export WARREN_BIN="${WARREN_BIN:-${CARGO_TARGET_DIR:-target}/debug/warren}"
export DASHBOARD_ARTIFACTS="${DASHBOARD_ARTIFACTS:-interop/dashboard/artifacts}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export DASHBOARD_TIMEOUT="${DASHBOARD_TIMEOUT:-180}"

fail() {
  echo "dashboard: FAIL: $*" >&2
  exit 1
}

# playwright-core needs Node 20 or later (Debian 12's own nodejs is 18).
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  # CI sets DASHBOARD_REQUIRED=1: there a skip is a failure.
  [ "${DASHBOARD_REQUIRED:-0}" = 1 ] \
    && fail "Node.js 20 or later is needed by playwright-core (found: $(node --version 2>/dev/null || echo none))"
  echo "dashboard: SKIPPED: Node.js 20 or later is needed by playwright-core (found: $(node --version 2>/dev/null || echo none))"
  exit 0
fi

if [ ! -x "$CHROMIUM" ]; then
  [ "$CHROMIUM" = /usr/bin/chromium ] || fail "CHROMIUM=$CHROMIUM is not an executable"
  echo "== installing Chromium (Debian package chromium)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  # A stale package index fails the first try: refresh it and try once more.
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; } \
    || fail "could not install chromium"
fi

# npm install when node_modules is missing or holds other versions than package.json pins.
deps_current() {
  local pkg wanted have
  for pkg in playwright-core amqplib; do
    wanted="$(node -p "require('$here/package.json').dependencies['$pkg']" 2>/dev/null)"
    have="$(node -p "require('$here/node_modules/$pkg/package.json').version" 2>/dev/null || true)"
    [ -n "$wanted" ] && [ "$have" = "$wanted" ] || return 1
  done
}
if ! deps_current; then
  echo "== installing Node deps (playwright-core, amqplib) in interop/dashboard"
  (cd "$here" && npm install --no-audit --no-fund --loglevel=error) || fail "npm install failed"
  deps_current || fail "npm install did not leave the versions package.json pins"
fi

[ -x "$WARREN_BIN" ] || fail "no warren binary at $WARREN_BIN (cargo build --bin warren, or set WARREN_BIN)"

mkdir -p "$DASHBOARD_ARTIFACTS"
# test.mjs bounds each wait and itself (DASHBOARD_TIMEOUT); this is a backstop.
timeout --kill-after=10 "$((DASHBOARD_TIMEOUT + 30))" node "$here/test.mjs"
