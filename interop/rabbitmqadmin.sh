#!/usr/bin/env bash
# rabbitmqadmin v1's everyday commands against a broker's management API
# (Warren or RabbitMQ): declare, list, show, publish, get, purge, delete,
# export and import. Exits non-zero, naming the command, at the first one
# that fails, or if `get` does not return the payload just published.
#
#   ADMIN_HOST (localhost), ADMIN_PORT (15672), ADMIN_USER / ADMIN_PASSWORD
#   (guest / guest), RABBITMQADMIN (rabbitmqadmin on PATH or /usr/sbin).
# Objects it makes are named warren-adm-<pid>-* in vhost / and removed at exit.
set -uo pipefail

HOST=${ADMIN_HOST:-localhost}
PORT=${ADMIN_PORT:-15672}
USER_=${ADMIN_USER:-guest}
PASS=${ADMIN_PASSWORD:-guest}
ADMIN=${RABBITMQADMIN:-$(command -v rabbitmqadmin || echo /usr/sbin/rabbitmqadmin)}
[ -x "$ADMIN" ] || { echo "rabbitmqadmin not found (set RABBITMQADMIN)" >&2; exit 2; }

P="warren-adm-$$"
Q="$P-q"
X="$P-x"
TMP=$(mktemp -d)
trap 'cleanup; rm -rf "$TMP"' EXIT

adm() {
    "$ADMIN" -H "$HOST" -P "$PORT" -u "$USER_" -p "$PASS" "$@"
}

# Runs one command; on failure prints it and its output, and exits.
run() {
    local out
    if ! out=$(adm "$@" 2>&1); then
        echo "FAILED: rabbitmqadmin $*" >&2
        echo "$out" >&2
        exit 1
    fi
    # v1 prints some refusals and still exits 0.
    if grep -qE '^\*\*\* |Traceback|Access refused|Not found' <<<"$out"; then
        echo "FAILED: rabbitmqadmin $*" >&2
        echo "$out" >&2
        exit 1
    fi
    printf '%s\n' "$out"
}

cleanup() {
    adm delete queue name="$Q" >/dev/null 2>&1
    adm delete exchange name="$X" >/dev/null 2>&1
}

step() { echo "== $*"; }

step declare
run declare queue name="$Q" durable=true arguments='{"x-message-ttl":600000}' >/dev/null
run declare exchange name="$X" type=fanout durable=true >/dev/null
run declare binding source="$X" destination="$Q" destination_type=queue routing_key=rk >/dev/null

step list
for what in queues exchanges bindings connections channels consumers users vhosts permissions policies nodes; do
    run list "$what" >/dev/null
done
run -V / list queues name messages >/dev/null
grep -q -- "$Q" <<<"$(run -f tsv -q list queues name)" || { echo "FAILED: list queues lacks $Q" >&2; exit 1; }
grep -q -- "$X" <<<"$(run -f tsv -q list exchanges name)" || { echo "FAILED: list exchanges lacks $X" >&2; exit 1; }
grep -q -- "$X" <<<"$(run -f tsv -q list bindings source)" || { echo "FAILED: list bindings lacks $X" >&2; exit 1; }

step show overview
run show overview >/dev/null

step publish and get
payload="hello-$P"
run publish exchange="$X" routing_key=rk payload="$payload" >/dev/null
got=$(run -f raw_json get queue="$Q" ackmode=ack_requeue_true count=1)
grep -q -- "\"payload\": *\"$payload\"" <<<"$got" || {
    echo "FAILED: get queue=$Q did not return the payload: $got" >&2
    exit 1
}

step purge
run purge queue name="$Q" >/dev/null
got=$(run -f raw_json get queue="$Q" ackmode=ack_requeue_false count=1)
grep -q -- "$payload" <<<"$got" && { echo "FAILED: purge left the message: $got" >&2; exit 1; }

step export and import
run -V / export "$TMP/defs.json" >/dev/null
grep -q -- "$Q" "$TMP/defs.json" || { echo "FAILED: export lacks $Q" >&2; exit 1; }
run -V / import "$TMP/defs.json" >/dev/null

step delete
run delete binding source="$X" destination="$Q" destination_type=queue properties_key=rk >/dev/null
run delete queue name="$Q" >/dev/null
run delete exchange name="$X" >/dev/null
grep -q -- "$Q" <<<"$(run -f tsv -q list queues name)" && { echo "FAILED: $Q still listed" >&2; exit 1; }

echo "rabbitmqadmin: all commands passed against $HOST:$PORT"
