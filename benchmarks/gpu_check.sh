#!/usr/bin/env bash
# The prepared GPU script: install specc over the device image's torch, run the CUDA tests,
# the quickstart on CUDA, and the GPT-2-124M step benchmark. Writes results under ${OUT:-out}.
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-index --no-deps --no-build-isolation . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" | tee -a "$OUT/gpu.txt"
echo "== GPT-2-124M step benchmark"
timeout 300 python3 benchmarks/bench_step.py --shape gpt2-124m --device cuda --steps 30 \
  --warmup 15 --rounds 3 --json "$OUT/bench_gpt2_124m.json" 2>&1 | grep -v Warning | tail -40
echo "== CUDA tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -W ignore 2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
echo "== quickstart on cuda"
( time timeout 120 python3 -m specc.cli.main run specs/quickstart.exp --backend cuda --quiet --root /tmp/runs ) 2>&1 | tail -12 | tee "$OUT/quickstart_cuda.txt"
