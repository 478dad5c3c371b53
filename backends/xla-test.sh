#!/usr/bin/env bash
# The XLA tests: set up (or reuse) the XLA environment, then run, on PJRT CPU devices, the XLA
# suite and the runtime and circuit tests again on torch 2.9 (the shared code runs on both).
#
#   bash backends/xla-test.sh [pytest args]     # the venv: $SPECC_XLA_VENV or .venv-xla
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SPECC_XLA_VENV:-.venv-xla}"
bash backends/xla-env.sh "$venv"
PJRT_DEVICE=CPU "$venv/bin/python" -m pytest tests/xla tests/test_runtime.py \
  tests/test_circuits.py "$@"
