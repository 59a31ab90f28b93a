#!/usr/bin/env bash
# Run the non-Rust interop client programs (pika, Celery, amqplib) against $AMQP_URL.
#
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f interop/run-clients.sh
#
# With AMQPS_URL (amqps://...) and AMQPS_CA (PEM of the CA that signed the broker's
# certificate) each client also publishes and consumes over TLS; AMQPS_CERT and
# AMQPS_KEY add a client certificate. interop/tls-clients.sh sets all of these up.
#
# Installs the client libraries first if they are missing:
#   - pika and Celery from interop/clients/requirements.txt (pip install -r)
#   - amqplib from interop/clients/package.json (npm install in that directory)
# Exits non-zero if any client program fails (all are run regardless).
# INTEROP_TIMEOUT (seconds, default 60) bounds each program.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
clients="$here/clients"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export INTEROP_TIMEOUT="${INTEROP_TIMEOUT:-60}"
export AMQPS_URL="${AMQPS_URL:-}" AMQPS_CA="${AMQPS_CA:-}" AMQPS_CERT="${AMQPS_CERT:-}" AMQPS_KEY="${AMQPS_KEY:-}"
PYTHON="${PYTHON:-python3}"

# A hard backstop in case a client ignores its own timeout.
run_bounded() {
  timeout --kill-after=5 "$((INTEROP_TIMEOUT + 15))" "$@"
}

install_deps() {
  local wanted
  wanted="$(grep -E '^(pika|celery)==' "$clients/requirements.txt" | cut -d= -f3 | paste -sd' ')"
  if [ "$("$PYTHON" -c 'import pika, celery; print(pika.__version__, celery.__version__)' 2>/dev/null)" != "$wanted" ]; then
    echo "== installing Python client deps (pika, celery: $wanted)"
    # Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
    PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$clients/requirements.txt" || return 1
  fi
  wanted="$(node -p "require('$clients/package.json').dependencies.amqplib" 2>/dev/null)"
  local have
  have="$(node -p "require('$clients/node_modules/amqplib/package.json').version" 2>/dev/null || true)"
  if [ "$have" != "$wanted" ]; then
    echo "== installing Node client deps (amqplib $wanted)"
    (cd "$clients" && npm install --no-audit --no-fund --loglevel=error) || return 1
  fi
}

if ! install_deps; then
  echo "run-clients: FAIL: could not install client dependencies" >&2
  exit 1
fi

echo "== broker: $(printf '%s' "$AMQP_URL" | sed -E 's#//[^@/]*@#//***@#')"
if [ -n "$AMQPS_URL" ]; then
  echo "== and over TLS: $(printf '%s' "$AMQPS_URL" | sed -E 's#//[^@/]*@#//***@#') (CA ${AMQPS_CA:-system}${AMQPS_CERT:+, client certificate})"
fi

passed=0
failed=0
failures=()
run() {
  local name="$1"
  shift
  echo "== $name"
  if run_bounded "$@"; then
    passed=$((passed + 1))
  else
    local rc=$?
    failed=$((failed + 1))
    failures+=("$name (exit $rc)")
    echo "== $name FAILED (exit $rc)" >&2
  fi
}

run pika "$PYTHON" "$clients/pika_client.py"
run celery "$PYTHON" "$clients/celery_countdown.py"
run amqplib node "$clients/amqplib_client.js"

if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}" >&2
fi
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
