#!/usr/bin/env bash
# AMQPS with real clients: makes a CA and certificates with openssl, starts a
# `warren` on free loopback ports with TLS on, and runs pika and amqplib
# (interop/run-clients.sh) over plain AMQP and over TLS. Then checks that
# SIGHUP serves a new certificate, and that with verify_peer and
# fail_if_no_peer_cert a client needs a CA-signed certificate.
#
#   interop/tls-clients.sh
#
# WARREN_BIN picks the binary (default: target/debug/warren under
# $CARGO_TARGET_DIR, built with `cargo build --bin warren` if missing).
# Exits non-zero on the first failure; the broker's log is shown then.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
PYTHON="${PYTHON:-python3}"
WARREN_BIN="${WARREN_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/warren}"
if [ ! -x "$WARREN_BIN" ]; then
  echo "== building warren"
  (cd "$repo" && cargo build --quiet --bin warren)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/warren-tls.XXXXXX")"
pid=""
stop_warren() {
  if [ -n "$pid" ]; then
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
cleanup() {
  stop_warren
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "tls-clients: FAIL: $*" >&2
  echo "-- warren log (last 40 lines):" >&2
  tail -n 40 "$work/warren.log" >&2 || true
  exit 1
}

# --- certificates -----------------------------------------------------------
cd "$work"
quiet() { "$@" >/dev/null 2>&1 || fail "$*"; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=warren interop CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.pem
# issue NAME EXTENSIONS: NAME.key (PKCS#8) and NAME.pem signed by the CA.
issue() {
  quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$2" >"$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem"
}
server_ext="subjectAltName=DNS:localhost,IP:127.0.0.1
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
issue server "$server_ext"
issue client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

# --- broker -----------------------------------------------------------------
read -r plain tls admin < <("$PYTHON" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# start_warren VERIFY_PEER FAIL_IF_NO_PEER_CERT
start_warren() {
  cat >warren.toml <<EOF
[amqp]
listen = "127.0.0.1:$plain"
[storage]
data_dir = "$work/data"
[admin]
listen = "127.0.0.1:$admin"
[tls]
listen = "127.0.0.1:$tls"
cert_file = "$work/server.pem"
key_file = "$work/server.key"
ca_file = "$work/ca.pem"
verify_peer = $1
fail_if_no_peer_cert = $2
EOF
  "$WARREN_BIN" --config warren.toml --log-level info >>warren.log 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$tls") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || fail "warren exited at start"
    sleep 0.1
  done
  fail "warren did not listen on $tls"
}

# The serial number of the certificate the broker serves now.
served_serial() {
  openssl s_client -connect "127.0.0.1:$tls" -servername localhost -CAfile ca.pem \
    -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial
}

export AMQP_URL="amqp://guest:guest@127.0.0.1:$plain/%2f"
export AMQPS_URL="amqps://guest:guest@localhost:$tls/%2f"
export AMQPS_CA="$work/ca.pem"

echo "== TLS without client certificates (plain $plain, TLS $tls)"
start_warren false false
"$here/run-clients.sh" || fail "clients over plain AMQP and TLS"

echo "== certificate reload on SIGHUP"
before="$(served_serial)" || fail "openssl s_client could not verify the served certificate"
issue server "$server_ext"
# A PKCS#1 key this time ("BEGIN RSA PRIVATE KEY"): both encodings load.
quiet openssl rsa -in server.key -traditional -out server.key
after="$(openssl x509 -in server.pem -noout -serial)"
kill -HUP "$pid"
for _ in $(seq 50); do
  [ "$(served_serial)" = "$after" ] && break
  sleep 0.1
done
[ "$(served_serial)" = "$after" ] || fail "still serving $before after SIGHUP, wanted $after"
echo "served $before, after SIGHUP $after"
kill -0 "$pid" || fail "warren died on SIGHUP"
stop_warren

echo "== verify_peer + fail_if_no_peer_cert"
start_warren true true
"$PYTHON" - <<'EOF' || fail "a client without a certificate was let in"
import os, ssl, sys
import pika
ctx = ssl.create_default_context(cafile=os.environ["AMQPS_CA"])
params = pika.URLParameters(os.environ["AMQPS_URL"])
params.ssl_options = pika.SSLOptions(ctx, server_hostname="localhost")
params.connection_attempts = 1
params.socket_timeout = 5
try:
    pika.BlockingConnection(params).close()
except Exception as e:  # refused in the TLS handshake
    print(f"refused without a client certificate: {type(e).__name__}")
    sys.exit(0)
sys.exit(1)
EOF
AMQPS_CERT="$work/client.pem" AMQPS_KEY="$work/client.key" "$here/run-clients.sh" ||
  fail "clients with a client certificate"
stop_warren
echo "tls-clients: all ok"
