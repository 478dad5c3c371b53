#!/usr/bin/env bash
# The full circuit_lora profile on a GPU, then its report; results packed under ${OUT:-out}.
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
REPO=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-index --no-deps --no-build-isolation . 2>&1 | tail -2
mkdir -p /tmp/w && cd /tmp/w
( time timeout "${RUN_LIMIT:-450}" python3 -m specc.cli.main run "$REPO/specs/circuit_lora.exp" \
    --backend cuda --quiet ) > "$OUT/run.log" 2>&1
tail -5 "$OUT/run.log"
python3 -m specc.cli.main report "$REPO/specs/circuit_lora.exp" --out /tmp/w/report \
  > "$OUT/report.txt" 2>&1
cat "$OUT/report.txt" | head -60
tar czf "$OUT/circuit_lora.tgz" report runs/*/*/metrics.jsonl runs/*/*/manifest.json \
  runs/*/*/allocation.json runs/*/*/circuits 2>/dev/null
ls -la "$OUT"
