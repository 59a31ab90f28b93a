#!/usr/bin/env bash
# Warren's whole test suite, as the README states it:
#   1. unit tests and in-process integration tests (tests/), plus the lapin
#      interop suite (interop/tests) against an in-process Warren;
#   2. the pika (Python) and amqplib (Node) client programs against a
#      `warren` binary started here on a free port, then over AMQPS
#      (interop/tls-clients.sh, certificates made with openssl).
# Installs what it needs when missing (Debian packages, pika, amqplib).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh

cargo test --workspace

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --bin warren
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d)
"$target_dir/debug/warren" --listen "127.0.0.1:$port" --data-dir "$data" --log-level warn &
warren_pid=$!
trap 'kill $warren_pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f" bash interop/run-clients.sh
# AMQPS: pika and amqplib over TLS with certificates made here, SIGHUP reload,
# client certificates (verify_peer + fail_if_no_peer_cert).
WARREN_BIN="$target_dir/debug/warren" bash interop/tls-clients.sh
