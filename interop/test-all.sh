#!/usr/bin/env bash
# Warren's whole test suite, as the README states it:
#   1. unit tests and in-process integration tests (tests/), plus the lapin
#      interop suite (interop/tests) against an in-process Warren;
#   2. the pika (Python) and amqplib (Node) client programs, RabbitMQ's
#      rabbitmqadmin v1 and the Nagios checks of nagios-plugins-rabbitmq
#      against a `warren` binary started here on free
#      ports, then the web dashboard in headless Chromium
#      (interop/dashboard), then AMQPS (interop/tls-clients.sh, certificates
#      made with openssl).
# Installs what it needs when missing (Debian packages, pika, amqplib, and
# rabbitmqadmin v1 taken out of Debian's rabbitmq-server package without
# installing RabbitMQ).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh

# rabbitmqadmin v1 is one Python file inside Debian's rabbitmq-server
# package: unpack it instead of installing RabbitMQ and Erlang.
if [ -z "${RABBITMQADMIN:-}" ]; then
  if command -v rabbitmqadmin >/dev/null; then
    RABBITMQADMIN="$(command -v rabbitmqadmin)"
  else
    tools="$HOME/.cache/warren-tools"
    if [ ! -x "$tools/rabbitmqadmin" ]; then
      mkdir -p "$tools"
      (
        cd "$(mktemp -d)"
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        apt-get download rabbitmq-server >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download rabbitmq-server >/dev/null; }
        dpkg-deb -x rabbitmq-server_*.deb root
        install -m 755 root/usr/bin/rabbitmqadmin "$tools/rabbitmqadmin"
      )
    fi
    RABBITMQADMIN="$tools/rabbitmqadmin"
  fi
fi
export RABBITMQADMIN

cargo test --workspace

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --bin warren
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
admin_port=$(free_port)
metrics_port=$(free_port)
data=$(mktemp -d)
"$target_dir/debug/warren" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
  --metrics-listen "127.0.0.1:$metrics_port" --data-dir "$data" --log-level warn &
warren_pid=$!
trap 'kill $warren_pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f" bash interop/run-clients.sh
# rabbitmqadmin v1's everyday commands, unchanged, against Warren.
ADMIN_HOST=127.0.0.1 ADMIN_PORT="$admin_port" bash interop/rabbitmqadmin.sh
# The Nagios checks of Debian's nagios-plugins-rabbitmq, unchanged, against Warren.
ADMIN_HOST=127.0.0.1 ADMIN_PORT="$admin_port" bash interop/nagios.sh
# The web dashboard in headless Chromium (playwright-core), with amqplib as the
# real client whose queues, messages and connection the pages show and change.
WARREN_BIN="$target_dir/debug/warren" bash interop/dashboard/run.sh
# AMQPS: pika and amqplib over TLS with certificates made here, SIGHUP reload,
# client certificates (verify_peer + fail_if_no_peer_cert).
WARREN_BIN="$target_dir/debug/warren" bash interop/tls-clients.sh
