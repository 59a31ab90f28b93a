#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer) of
# everything that parses client bytes, and of a whole connection in process.
# The fuzz crate is tests/fuzz/ (its own workspace); its targets are listed in
# tests/fuzz/Cargo.toml and described at the top of each fuzz_targets/*.rs.
#
#   interop/fuzz.sh ci              build, then run every target briefly
#                                   (FUZZ_CI_SECONDS, default 25) on the
#                                   committed corpus; non-zero on any crash,
#                                   hang, leak or OOM
#   interop/fuzz.sh long SECONDS    every target SECONDS long, niced, growing
#                                   tests/fuzz/corpus-new/ (kept between runs,
#                                   not committed); prints executions, final
#                                   cov/ft, corpus size and when coverage last
#                                   grew, to see it plateau
#   interop/fuzz.sh cmin            merges corpus-new/ into the committed
#                                   corpus/, minimised (cargo fuzz cmin's -merge)
#   interop/fuzz.sh gen             rebuilds the seed corpus from lapin sessions
#                                   against an in-process Warren, then cmin
#   interop/fuzz.sh build           builds the targets only
#   FUZZ_TARGETS="frame method"     limits any of these to some targets
#
# Only the stable toolchain is needed: cargo fuzz passes -Z flags, which
# RUSTC_BOOTSTRAP=1 allows (AddressSanitizer's runtime ships with stable).
# Every cargo build takes /tmp/warren-cargo.lock (the machine's build lock);
# fuzzing itself runs niced, outside the lock. A crash leaves its input in
# tests/fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz -O -a <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_DIR=tests/fuzz
TARGET_DIR="${WARREN_FUZZ_TARGET_DIR:-$HOME/.cache/warren-fuzz-target}"
SANITIZER="${WARREN_FUZZ_SANITIZER:-address}"
LOCK=/tmp/warren-cargo.lock
ALL_TARGETS=(frame method fast_diff properties table sasl handshake connection)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
export RUSTC_BOOTSTRAP=1
# A machine with rustup and a nightly default must still build as CI does.
command -v rustup >/dev/null && export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
export CARGO_TERM_COLOR=never

locked() { flock "$LOCK" "$@"; }

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    locked cargo install cargo-fuzz --locked
  fi
}

build() {
  ensure_cargo_fuzz
  echo "== building fuzz targets (sanitizer: $SANITIZER)"
  # -O with debug assertions (-a): optimised, and integer overflow still panics.
  locked cargo fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$TARGET_DIR" -O -a -s "$SANITIZER"
}

bin() {
  local host
  host="$(rustc -vV | sed -n 's/^host: //p')"
  echo "$TARGET_DIR/$host/release/$1"
}

# run TARGET SECONDS WORKDIR [extra libFuzzer flags]: fuzzes TARGET, new
# inputs going to WORKDIR, the committed corpus read as seeds; prints one
# summary line; returns libFuzzer's status.
run() {
  local t="$1" secs="$2" work="$3"
  shift 3
  mkdir -p "$work" "$FUZZ_DIR/artifacts/$t" "$FUZZ_DIR/corpus/$t"
  local log="$FUZZ_DIR/artifacts/$t.log" rc=0
  # Each line stamped with the seconds since start (perl: bash's read is a
  # syscall per byte and would hold libFuzzer back), to see when coverage
  # last grew.
  set +e
  nice -n 19 "$(bin "$t")" "$work" "$FUZZ_DIR/corpus/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$FUZZ_DIR/artifacts/$t/" -print_final_stats=1 "$@" 2>&1 |
    perl -ne 'BEGIN { $| = 1; $s = time } print time - $s, " ", $_' >"$log"
  rc=${PIPESTATUS[0]}
  set -e
  local last execs cov ft corp grew at
  last="$(grep -E '#[0-9]+.(DONE|pulse|NEW|REDUCE|INITED) ' "$log" | tail -1 || true)"
  execs="$(sed -n 's/.*stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")"
  # Where the last input with new coverage (cov, not only ft) was found.
  grew="$(awk '/#[0-9]+.NEW / { c = $0; sub(/.* cov: /, "", c); sub(/ .*/, "", c); if (c + 0 > best) { best = c + 0; line = $0 } } END { print line }' "$log")"
  at="$(cut -d' ' -f1 <<<"$grew")s, exec $(sed -n 's/^[0-9]* #\([0-9]*\).*/\1/p' <<<"$grew")"
  printf '%-11s %5ss  execs %-10s cov %-6s ft %-6s corpus %-13s cov last grew at %s  rc %s\n' \
    "$t" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$at" "$rc"
  if [ "$rc" -ne 0 ]; then
    echo "!! $t failed (libFuzzer status $rc); its log: $log; inputs in $FUZZ_DIR/artifacts/$t/" >&2
    grep -E -A30 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY' "$log" | head -60 >&2 || true
  fi
  return "$rc"
}

cmin() {
  for t in "${TARGETS[@]}"; do
    local new="$FUZZ_DIR/corpus-new/$t" dst="$FUZZ_DIR/corpus/$t" tmp
    tmp="$(mktemp -d)"
    mkdir -p "$dst" "$new" "$FUZZ_DIR/artifacts"
    # -merge=1 keeps the smallest set of inputs that covers everything in
    # both; -use_counters=0 counts edges, not hit counts, which keeps every
    # edge with a third of the inputs (the committed corpus stays ~1 MB).
    nice -n 19 "$(bin "$t")" -merge=1 -use_counters=0 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      "$tmp" "$dst" "$new" \
      >"$FUZZ_DIR/artifacts/$t.cmin.log" 2>&1
    rm -rf "$dst" && mv "$tmp" "$dst"
    echo "$t: $(find "$dst" -type f | wc -l) inputs, $(du -sb "$dst" | cut -f1) bytes"
  done
  echo "corpus total: $(du -sb "$FUZZ_DIR/corpus" | cut -f1) bytes"
}

case "${1:-}" in
  build)
    build
    ;;
  ci)
    build
    secs="${FUZZ_CI_SECONDS:-25}"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    failed=()
    for t in "${TARGETS[@]}"; do
      run "$t" "$secs" "$work/$t" || failed+=("$t")
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzzing found failures in: ${failed[*]}" >&2
      exit 1
    fi
    ;;
  long)
    secs="${2:?usage: interop/fuzz.sh long SECONDS}"
    build
    failed=()
    for t in "${TARGETS[@]}"; do
      run "$t" "$secs" "$FUZZ_DIR/corpus-new/$t" || failed+=("$t")
    done
    [ ${#failed[@]} -eq 0 ] || { echo "failures in: ${failed[*]}" >&2; exit 1; }
    ;;
  cmin)
    build
    cmin
    ;;
  gen)
    build
    echo "== generating seeds from lapin sessions"
    locked cargo build --manifest-path "$FUZZ_DIR/Cargo.toml" --target-dir "$TARGET_DIR" --features gen --bin gen-corpus
    mkdir -p "$FUZZ_DIR/corpus-new"
    "$TARGET_DIR/debug/gen-corpus" "$FUZZ_DIR/corpus-new"
    cmin
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 64
    ;;
esac
