#!/usr/bin/env bash
# Creates .venv (once) and installs requirements.txt and the optional requirements-onnx.txt (the
# tests run the ONNX backends) into it whenever those files change.
# Source it (the other scripts do); afterwards `$PY` is the project's interpreter and the
# checkout is on PYTHONPATH. It changes no options of the shell that sources it.
_ppdet_gcnet_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ppdet_gcnet_venv="${PPDET_GCNET_VENV:-$_ppdet_gcnet_root/.venv}"
(
  set -euo pipefail
  root="$_ppdet_gcnet_root" venv="$_ppdet_gcnet_venv"
  base_python="${PYTHON:-python3.11}"
  command -v "$base_python" >/dev/null 2>&1 || base_python=python3
  if [ ! -x "$venv/bin/python" ]; then
    echo "[bootstrap] creating virtual environment in $venv"
    "$base_python" -m venv "$venv"
  fi
  stamp="$venv/.requirements.sha256"
  want="$(cat "$root/requirements.txt" "$root/requirements-common.txt" "$root/requirements-onnx.txt" \
    | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[bootstrap] installing requirements (first run takes about a minute)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" \
      -r "$root/requirements-onnx.txt"
    echo "$want" > "$stamp"
  fi
  # scripts/test.sh sets PPDET_GCNET_DEV=1: the tests' PyTorch references (requirements-dev.txt)
  if [ -n "${PPDET_GCNET_DEV:-}" ]; then
    dev_stamp="$venv/.requirements-dev.sha256"
    dev_want="$(cat "$root/requirements-dev.txt" <(echo "$want") | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$dev_stamp" 2>/dev/null)" != "$dev_want" ]; then
      echo "[bootstrap] installing test requirements (torch, torchvision, mmcv-lite; a few minutes)"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$root/requirements.txt" -r "$root/requirements-dev.txt"
      echo "$dev_want" > "$dev_stamp"
    fi
  fi
) || { echo "[bootstrap] setting up $_ppdet_gcnet_venv failed" >&2; return 1 2>/dev/null || exit 1; }
ROOT="$_ppdet_gcnet_root"
PY="$_ppdet_gcnet_venv/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ROOT PY
unset _ppdet_gcnet_root _ppdet_gcnet_venv
