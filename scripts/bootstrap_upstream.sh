#!/usr/bin/env bash
# The upstream test leg's environment: creates .venv-upstream (once) with upstream
# PaddleDetection installed from its source snapshot, next to Paddle 3.3.1
# (requirements-upstream.txt). Source it (scripts/test.sh --upstream does); afterwards `$PY` is
# that venv's interpreter, `$UPSTREAM_HOME` a HOME holding what upstream would download, and the
# checkout is on PYTHONPATH.
# The snapshot: $PPDET_GCNET_UPSTREAM_TARBALL, default ../shared/upstream/paddledetection-*.tar.gz
# beside the checkout (where CI puts it).
_ppdet_gcnet_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ppdet_gcnet_venv="${PPDET_GCNET_UPSTREAM_VENV:-$_ppdet_gcnet_root/.venv-upstream}"
(
  set -euo pipefail
  root="$_ppdet_gcnet_root" venv="$_ppdet_gcnet_venv"
  tarball="${PPDET_GCNET_UPSTREAM_TARBALL:-$(ls "$root"/../shared/upstream/paddledetection-*.tar.gz 2>/dev/null | head -n1)}"
  [ -f "$tarball" ] || { echo "[upstream] no PaddleDetection snapshot: set PPDET_GCNET_UPSTREAM_TARBALL" \
    "or put it in ../shared/upstream/ beside the checkout" >&2; exit 1; }
  base_python="${PYTHON:-python3.11}"
  command -v "$base_python" >/dev/null 2>&1 || base_python=python3
  if [ ! -x "$venv/bin/python" ]; then
    echo "[upstream] creating virtual environment in $venv"
    "$base_python" -m venv "$venv"
  fi
  stamp="$venv/.upstream.sha256"
  want="$(cat "$root/requirements-upstream.txt" "$tarball" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[upstream] installing requirements-upstream.txt and $(basename "$tarball") (first run takes a few minutes)"
    pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" -r "$root/requirements-upstream.txt"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    tar -xzf "$tarball" -C "$work"
    # --no-deps: its requirements.txt names the retired `sklearn` shim and unpinned extras
    "${pip[@]}" --no-deps "$work"/PaddleDetection-*
    "${pip[@]}" -r "$root/requirements-upstream.txt"  # re-assert the pins (numpy < 2)
    echo "$want" > "$stamp"
  fi
  # Upstream's draw_bbox loads a label font it downloads into ~/.cache/paddle/ at first use (the
  # snapshot lacks ppdet/utils/simfang.ttf too). Offline, the tests run with HOME=$venv/home,
  # where a font from matplotlib stands in for it.
  font="$venv/home/.cache/paddle/simfang.ttf"
  if [ ! -f "$font" ]; then
    mkdir -p "$(dirname "$font")"
    cp "$("$venv/bin/python" -c 'import matplotlib, os; print(os.path.join(
        matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))')" "$font"
  fi
) || { echo "[upstream] setting up $_ppdet_gcnet_venv failed" >&2; return 1 2>/dev/null || exit 1; }
ROOT="$_ppdet_gcnet_root"
PY="$_ppdet_gcnet_venv/bin/python"
UPSTREAM_HOME="$_ppdet_gcnet_venv/home"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ROOT PY UPSTREAM_HOME
unset _ppdet_gcnet_root _ppdet_gcnet_venv
