#!/usr/bin/env bash
# Installs what building and testing Warren needs on a fresh Debian machine,
# skipping whatever is already there. Sourced by interop/test-all.sh and .ci/run.
set -euo pipefail

need_apt=()
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || need_apt+=(python3)
# pika is installed with pip (interop/run-clients.sh); a bare Debian python3 has no pip.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# RocksDB is linked from Debian's package (see .cargo/config.toml); bindgen needs libclang.
[ -e /usr/include/rocksdb/c.h ] || need_apt+=(librocksdb-dev)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
