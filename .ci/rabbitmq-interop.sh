#!/usr/bin/env bash
# Runs the lapin interop suite and the client programs against RabbitMQ from
# Debian, proving the tests encode RabbitMQ's behaviour. Warns loudly (and
# passes) when RabbitMQ cannot be installed on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

warn() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! WARNING: %s\n' "$*"
  printf '!!! The interop suite was NOT checked against RabbitMQ in this run.\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}

if ! command -v rabbitmq-server >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null; }; then
    warn "rabbitmq-server could not be installed"
    exit 0
  fi
fi

# The management plugin: the interop tests set up users, vhosts, permissions
# and policies through its HTTP API, as they do through Warren's.
rabbitmq-plugins -q enable --offline rabbitmq_management >/dev/null 2>&1 || true
started=""
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  rabbitmq-server >/tmp/warren-ci-rabbitmq.log 2>&1 &
  started=1
  for _ in $(seq 120); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
  done
fi
cleanup() {
  if [ -n "$started" ]; then rabbitmqctl -q stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if ! rabbitmqctl -q await_startup >/dev/null 2>&1; then
  warn "RabbitMQ did not start (see /tmp/warren-ci-rabbitmq.log)"
  exit 0
fi
echo "RabbitMQ $(rabbitmqctl -q version 2>/dev/null) is up"
# A node already running when the plugin was enabled offline takes it now.
rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 || true
for _ in $(seq 60); do
  (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && break
  sleep 1
done

export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
export AMQP_BROKER=rabbitmq
export ADMIN_URL="http://guest:guest@127.0.0.1:15672"
cargo test -p warren-interop
# warrenctl's verbs against RabbitMQ's management API (the same suite runs
# against Warren in tests/warrenctl.rs).
WARRENCTL_RABBITMQ_URL=http://127.0.0.1:15672 cargo test --test warrenctl
bash interop/run-clients.sh
