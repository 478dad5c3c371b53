#!/usr/bin/env bash
# The prepared TPU script (run on a TPU VM from a checkout): the XLA environment with libtpu,
# the XLA tests' guards on the TPU, and the step benchmark (graphs compiled, compile time, step
# time after warm-up) for the quickstart and GPT-2-124M block shapes, single chip and SPMD over
# the host's 4 chips. Writes JSON under ${OUT:-benchmarks/results}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
venv=${SPECC_XLA_VENV:-.venv-xla-tpu}
bash backends/xla-env.sh --tpu "$venv"
export PJRT_DEVICE=TPU
py="$venv/bin/python"
"$py" -c "import torch_xla, torch_xla.runtime as xr; print(xr.device_type(), xr.global_runtime_device_count(), 'devices')"
echo "== quickstart, one chip (bf16 autocast)"
"$py" benchmarks/bench_xla.py --device TPU --no-baseline --steps 200 --warmup 5 \
  --json "$OUT/xla_tpu_quickstart.json"
echo "== GPT-2-124M block shapes, batch 32 x 1024, one chip"
"$py" benchmarks/bench_xla.py --device TPU --no-baseline --steps 60 --warmup 5 \
  --spec benchmarks/specs/xla_gpt2_124m.exp --json "$OUT/xla_tpu_gpt2.json"
echo "== the same over 4 chips: SPMD data parallel, then FSDPv2"
for p in pod fsdp; do
  "$py" benchmarks/bench_xla.py --device TPU --no-baseline --steps 60 --warmup 5 \
    --spec benchmarks/specs/xla_gpt2_124m.exp --profile "$p" --json "$OUT/xla_tpu_gpt2_$p.json"
done
