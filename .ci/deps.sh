#!/usr/bin/env bash
# Installs what building and testing Warren needs on a fresh Debian machine,
# skipping whatever is already there. Sourced by interop/test-all.sh and .ci/run.
#
# Packages are checked by asking dpkg whether each one is installed, never by
# looking for files: a file another package happens to ship (libclang-cpp14's
# libclang-cpp.so, say) must not hide a missing one. .ci/fresh-machine.sh runs
# this script and the README's commands in a clean Debian root, so a missing
# step here fails CI.
set -euo pipefail

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }

# What each package is for:
#   librocksdb-dev  RocksDB is linked from Debian's package (see .cargo/config.toml)
#   libsnappy-dev, liblz4-dev, libzstd-dev, libbz2-dev, zlib1g-dev
#                   the compression libraries build.rs links beside the static
#                   RocksDB (librocksdb-dev depends on them today; named here
#                   because the link names them)
#   libclang-dev    bindgen (librocksdb-sys's build script) loads libclang.so
#   gcc, libc6-dev  the C toolchain cargo links with and -sys crates compile with
#   pkg-config      -sys build scripts probe with it
#   python3(-pip)   the pika client program (pika itself comes from PyPI)
#   nodejs, npm     the amqplib client program (amqplib itself comes from npm)
#   ca-certificates crates.io, PyPI and npm over HTTPS
#   openssl         interop/tls-clients.sh makes its CA and certificates with it
#   e2fsprogs, mount  tests/disk_full.rs formats and loop-mounts a small ext4 image
wanted=(librocksdb-dev libsnappy-dev liblz4-dev libzstd-dev libbz2-dev zlib1g-dev libclang-dev gcc libc6-dev pkg-config python3 python3-pip nodejs npm ca-certificates openssl e2fsprogs mount)

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

need_apt=()
for pkg in "${wanted[@]}"; do
  case "$pkg" in
    # Tools that may come from elsewhere than Debian (pyenv, nvm, rustup's
    # linker): what matters is that they run.
    python3) command -v python3 >/dev/null && continue ;;
    python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    gcc) command -v cc >/dev/null && installed libc6-dev && continue ;;
  esac
  installed "$pkg" || need_apt+=("$pkg")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# What bindgen loads, checked the way it looks: a libclang.so or libclang-N.so.
if ! ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so* /usr/lib/*/libclang-*.so* >/dev/null 2>&1; then
  echo "deps: libclang-dev is installed but no libclang.so was found for bindgen" >&2
  exit 1
fi
