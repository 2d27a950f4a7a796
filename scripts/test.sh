#!/usr/bin/env bash
# The README's test command: sets up .venv (first run) and runs the test suite on CPU.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@" tests
