#!/usr/bin/env bash
# The README's test command: sets up .venv (first run) and runs the test suite on CPU.
# Extra arguments go to pytest (e.g. a single test file); without them the whole suite runs.
set -euo pipefail
PPDET_GCNET_DEV=1 source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"  # + requirements-dev.txt
cd "$ROOT"
if [ $# -eq 0 ]; then set -- tests; fi
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
