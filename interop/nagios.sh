#!/usr/bin/env bash
# The Nagios checks of Debian's nagios-plugins-rabbitmq against a broker's
# management API (Warren or RabbitMQ): server (memory, processes, fds,
# sockets), watermark, partition, aliveness, overview, objects,
# connections and queue must all answer OK. Installs the package when
# missing. Exits non-zero, naming the check, at the first one that is not OK.
#
#   ADMIN_HOST (127.0.0.1), ADMIN_PORT (15672), ADMIN_USER / ADMIN_PASSWORD
#   (guest / guest), NODE (the node's host part: rabbit@<NODE>; default the
#   short host name, as the plugins' own default when -H is a host name).
set -uo pipefail

HOST=${ADMIN_HOST:-127.0.0.1}
PORT=${ADMIN_PORT:-15672}
USER_=${ADMIN_USER:-guest}
PASS=${ADMIN_PASSWORD:-guest}
NODE=${NODE:-$(hostname -s)}

if ! command -v check_rabbitmq_server >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nagios-plugins-rabbitmq >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nagios-plugins-rabbitmq >/dev/null; } ||
    { echo "nagios-plugins-rabbitmq could not be installed" >&2; exit 2; }
fi

# A queue for check_rabbitmq_queue, declared (and removed at exit) through the API.
Q="warren-nagios-$$"
api() {
  python3 - "$1" "$2" <<PY
import base64, sys, urllib.request
req = urllib.request.Request("http://$HOST:$PORT/api/queues/%2F/" + sys.argv[2], method=sys.argv[1],
                             data=b'{"durable":false}' if sys.argv[1] == "PUT" else None)
req.add_header("Authorization", "Basic " + base64.b64encode(b"$USER_:$PASS").decode())
req.add_header("Content-Type", "application/json")
urllib.request.urlopen(req, timeout=10).read()
PY
}
api PUT "$Q" || { echo "FAILED: cannot declare $Q through the API" >&2; exit 1; }
trap 'api DELETE "$Q" >/dev/null 2>&1' EXIT

common=(-H "$HOST" --port "$PORT" -u "$USER_" -p "$PASS")
check() {
  local name=$1; shift
  local out
  out=$("/usr/bin/check_rabbitmq_$name" "${common[@]}" "$@" 2>&1)
  echo "$out"
  if ! grep -q "^RABBITMQ_[A-Z]* OK" <<<"$out"; then
    echo "FAILED: check_rabbitmq_$name $*" >&2
    exit 1
  fi
}

check server --node "$NODE"
check watermark --node "$NODE"
check partition --node "$NODE"
check aliveness
check overview
check objects
check connections
check queue --queue "$Q"
echo "nagios: every check OK against $HOST:$PORT"
