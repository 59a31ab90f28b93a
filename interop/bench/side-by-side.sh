#!/usr/bin/env bash
# Warren vs RabbitMQ side-by-side benchmark; see interop/bench/README.md.
# All arguments go to side_by_side.py (try --help).
set -euo pipefail
exec python3 "$(dirname "$0")/side_by_side.py" "$@"
