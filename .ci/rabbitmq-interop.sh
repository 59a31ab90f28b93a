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

# Prints the directory of a CA (ca.pem), a server certificate for
# localhost/127.0.0.1 and a rabbitmq.conf serving AMQPS on 5671 with them,
# all readable by the rabbitmq user the server runs as.
make_tls_config() {
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/warren-ci-rabbitmq-tls.XXXXXX")" || return 1
  (
    set -e
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=warren CI CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
    printf '%s\n' \
      "listeners.ssl.default = 5671" \
      "ssl_options.cacertfile = $dir/ca.pem" \
      "ssl_options.certfile = $dir/server.pem" \
      "ssl_options.keyfile = $dir/server.key" \
      "ssl_options.verify = verify_none" \
      "ssl_options.fail_if_no_peer_cert = false" >rabbitmq.conf
    rm -f ca.key ca.srl server.csr server.ext
    chmod 755 "$dir"
    chmod 644 "$dir"/*
    if id rabbitmq >/dev/null 2>&1; then
      chown -R rabbitmq "$dir"
      chmod 600 server.key
    fi
  ) >/dev/null 2>&1 || {
    rm -rf "$dir"
    return 1
  }
  printf '%s\n' "$dir"
}

# The management plugin: the interop tests set up users, vhosts, permissions
# and policies through its HTTP API, as they do through Warren's.
rabbitmq-plugins -q enable --offline rabbitmq_management >/dev/null 2>&1 || true
started=""
tls_dir=""
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  # AMQPS on 5671 with a CA and server certificate made here, so the TLS
  # tests (interop/tests/tls.rs, the clients' TLS flow) run against RabbitMQ.
  config=""
  if tls_dir="$(make_tls_config)"; then
    # 3.10 takes the path with or without the .conf extension (both checked).
    config="$tls_dir/rabbitmq.conf"
  else
    tls_dir=""
    echo "note: could not make TLS certificates; RabbitMQ starts without AMQPS"
  fi
  # (The Debian wrapper's `su rabbitmq` keeps the environment.)
  RABBITMQ_CONFIG_FILE="${config:-${RABBITMQ_CONFIG_FILE:-}}" rabbitmq-server >/tmp/warren-ci-rabbitmq.log 2>&1 &
  started=1
  for _ in $(seq 120); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
  done
fi
cleanup() {
  if [ -n "$started" ]; then rabbitmqctl -q stop >/dev/null 2>&1 || true; fi
  if [ -n "$tls_dir" ]; then rm -rf "$tls_dir"; fi
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
# AMQPS only against the RabbitMQ started here, with the certificates made here.
unset AMQPS_URL AMQPS_CA AMQPS_CERT AMQPS_KEY
if [ -n "$tls_dir" ]; then
  for _ in $(seq 30); do
    (exec 3<>/dev/tcp/127.0.0.1/5671) 2>/dev/null && break
    sleep 1
  done
  if (exec 3<>/dev/tcp/127.0.0.1/5671) 2>/dev/null; then
    export AMQPS_URL="amqps://guest:guest@localhost:5671/%2f"
    export AMQPS_CA="$tls_dir/ca.pem"
    echo "RabbitMQ serves AMQPS on 5671: the TLS tests run against it too"
  else
    echo "!!! WARNING: RabbitMQ does not listen for AMQPS on 5671 (see /tmp/warren-ci-rabbitmq.log)"
  fi
fi
if [ -z "${AMQPS_URL:-}" ]; then
  echo "note: RabbitMQ was already running (or has no AMQPS listener): TLS is NOT checked against RabbitMQ"
fi
export AMQP_BROKER=rabbitmq
export ADMIN_URL="http://guest:guest@127.0.0.1:15672"
cargo test -p warren-interop
# warrenctl's verbs against RabbitMQ's management API (the same suite runs
# against Warren in tests/warrenctl.rs).
WARRENCTL_RABBITMQ_URL=http://127.0.0.1:15672 cargo test --test warrenctl --test warrenctl_ops
bash interop/run-clients.sh
# The rabbitmqadmin v1 script run against Warren by the test command, proved
# against RabbitMQ.
ADMIN_HOST=127.0.0.1 ADMIN_PORT=15672 bash interop/rabbitmqadmin.sh
