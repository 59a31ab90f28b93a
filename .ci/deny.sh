#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy: .ci/deny.toml): RustSec
# advisories, licenses, bans (duplicate versions warn) and sources, over the
# whole workspace. Installs cargo-deny from crates.io when it is missing.
#
# The advisory database is a git repository on GitHub. Where GitHub cannot be
# reached (some CI sandboxes reach only crates.io), the advisories check
# cannot run: this script then says so loudly and runs the other three
# checks; set DENY_REQUIRE_ADVISORIES=1 to fail instead. A database fetched
# earlier (~/.cargo/advisory-dbs) is used, stale, when a new fetch fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo deny --version >/dev/null 2>&1; then
  echo "== installing cargo-deny"
  flock /tmp/warren-cargo.lock cargo install cargo-deny --locked
fi

deny=(cargo deny --manifest-path Cargo.toml --workspace --config .ci/deny.toml)
checks=(licenses bans sources)
offline=()
if timeout 180 "${deny[@]}" fetch db >/dev/null 2>&1; then
  checks=(advisories "${checks[@]}")
elif compgen -G "$HOME/.cargo/advisory-dbs/*/crates" >/dev/null; then
  echo "!! deny: the RustSec advisory database could not be fetched; checking against the copy fetched earlier (stale)" >&2
  checks=(advisories "${checks[@]}")
  offline=(--offline)
else
  echo "!! deny: the RustSec advisory database (github.com/RustSec/advisory-db) cannot be fetched from here:" >&2
  echo "!! deny: ADVISORIES NOT CHECKED; checking licenses, bans and sources only" >&2
  if [ "${DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    exit 1
  fi
fi
echo "== cargo deny check ${checks[*]}"
"${deny[@]}" "${offline[@]}" check --show-stats "${checks[@]}"
