#!/usr/bin/env bash
# Set up the XLA environment: torch 2.9.0 + torch-xla 2.9.0 (built against each other), the
# shared dependencies at versions verified on torch 2.9, and specc itself (editable).
#
#   bash backends/xla-env.sh [--tpu] [VENV]      # VENV defaults to $SPECC_XLA_VENV or .venv-xla
#
# About 7.6 GB (torch 2.9.0's wheel carries its CUDA libraries) and two minutes the first time.
# A venv already built from the same requirements is kept (its stamp records their hash), so a
# cached venv outside the clone costs seconds: CI keeps one under ~/.cache/specc. --tpu adds
# torch-xla's tpu extra (libtpu) for a TPU VM; without it the backend runs on PJRT CPU devices.
set -euo pipefail
cd "$(dirname "$0")/.."

tpu=""
if [[ "${1:-}" == "--tpu" ]]; then
  tpu="tpu"
  shift
fi
venv="${1:-${SPECC_XLA_VENV:-.venv-xla}}"
python="${PYTHON:-python3}"
stamp="$(cat requirements/xla.txt; echo "$tpu")"
stamp="$(printf '%s' "$stamp" | sha256sum | cut -d' ' -f1)"

if [[ ! -f "$venv/.installed" || "$(cat "$venv/.installed")" != "$stamp" ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r requirements/xla.txt
  if [[ -n "$tpu" ]]; then
    "$venv/bin/python" -m pip install -q "torch_xla[tpu]==2.9.0"
  fi
  echo "$stamp" > "$venv/.installed"
fi
# specc from this checkout (no dependencies: the pins above are the environment)
"$venv/bin/python" -m pip install -q --no-deps -e .
echo "XLA environment ready: $venv (run with $venv/bin/specc ... --backend xla)"
