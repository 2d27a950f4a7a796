#!/usr/bin/env bash
# The README's test command: sets up .venv (first run) and runs the test suite on CPU against
# PyPI's paddledet 2.6.0. Extra arguments go to pytest (e.g. a single test file); without them
# the whole suite runs.
#
#   bash scripts/test.sh --upstream [pytest args]
# runs the tests marked `ppdet` (those that run PaddleDetection itself) in .venv-upstream
# instead, against upstream PaddleDetection installed from its source snapshot
# (scripts/bootstrap_upstream.sh sets that venv up on first use).
set -euo pipefail
if [ "${1:-}" = "--upstream" ]; then
  shift
  source "$(dirname "${BASH_SOURCE[0]}")/bootstrap_upstream.sh"
  cd "$ROOT"
  # Without test paths, only the files that hold ppdet tests: the others may import what this
  # venv lacks.
  paths=0
  for arg in "$@"; do [ -e "${arg%%::*}" ] && paths=1; done
  if [ "$paths" -eq 0 ]; then set -- "$@" $(grep -l "mark.ppdet" tests/test_*.py); fi
  HOME="$UPSTREAM_HOME" exec "$PY" -m pytest -q -p no:cacheprovider -m ppdet "$@"
fi
PPDET_GCNET_DEV=1 source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"  # + requirements-dev.txt
cd "$ROOT"
if [ $# -eq 0 ]; then set -- tests; fi
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
