#!/usr/bin/env bash
# Creates .venv (once) and installs requirements.txt into it whenever that file changes.
# Sourced by the other scripts; afterwards `$PY` is the project's interpreter.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PPDET_GCNET_VENV:-$ROOT/.venv}"
BASE_PYTHON="${PYTHON:-python3.11}"
command -v "$BASE_PYTHON" >/dev/null 2>&1 || BASE_PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtual environment in $VENV"
  "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.requirements.sha256"
want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-common.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing requirements (first run takes about a minute)"
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PY
