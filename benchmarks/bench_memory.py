"""The memory model (Note [Memory model], specc/runtime/memory.py) against the measured peak of
real specc steps: for each shape, one child process trains a few steps and reports the peak
growth of its resident set over a step (CPU; Linux's peak RSS reset after the first step, when
the weights and the optimizer's state exist) or torch.cuda.max_memory_allocated (CUDA); the
model's estimate of the same quantity is printed beside it, with their ratio.

    .venv/bin/python benchmarks/bench_memory.py            # CPU, fp32
    python benchmarks/bench_memory.py --device cuda         (GPU, when lent)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# glibc keeps freed memory for reuse, so a later step's tensors would not grow the resident
# set: a fixed mmap threshold maps every large tensor on its own and unmaps it when freed, so
# the peak resident set follows the live tensors.
MALLOC_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
SHAPES = {  # name: (model, batch, rewrites)
    "gpt2-w128-b8": ("gpt2(layers = 2, heads = 4, width = 128, context = 256, "
                     "vocab = numbers(0..8000))", 8, "auto"),
    "gpt2-w128-b8-plain": ("gpt2(layers = 2, heads = 4, width = 128, context = 256, "
                           "vocab = numbers(0..8000))", 8, "none"),
    "gpt2-w256-l4-b4": ("gpt2(layers = 4, heads = 4, width = 256, context = 256, "
                        "vocab = numbers(0..2000))", 4, "auto"),
    "pythia-w128-b8": ("pythia(layers = 2, heads = 4, width = 128, context = 256, "
                       "vocab = numbers(0..8000))", 8, "auto"),
    "llama-w128-b8": ("llama(layers = 2, heads = 4, width = 128, context = 256, "
                      "vocab = numbers(0..8000))", 8, "auto"),
    "gpt2-w64-l8-b16-plain": ("gpt2(layers = 8, heads = 4, width = 64, context = 256, "
                              "vocab = numbers(0..1000))", 16, "none"),
    "gpt2-w64-l8-b16-ckpt": ("gpt2(layers = 8, heads = 4, width = 64, context = 256, "
                             "vocab = numbers(0..1000))", 16, "auto"),  # with checkpointing
}
SPEC = """experiment bench {{
  model lm = {model}
  data text = zipf_ngrams(vocab = 1000, rules = 512, heldout = 4)
  train {{
    optimizer = adamw(lr = 3e-4)
    batch = {batch}
    steps = 1000
    accumulate = 1
    rewrites = {rewrites}
  }}
}}
"""


def built_trainer(spec: str, device: str, tmp: Path) -> Any:
    """The Trainer of a one-run spec, built (model, data, optimizer) in ``tmp``."""
    from specc_torch import BACKEND_CPU, BACKEND_CUDA

    import specc
    from specc.runtime.loop import Trainer

    result = specc.plan(spec)
    assert result.ok, result.render()
    [run] = list(result.plan.experiments[0].runs())  # type: ignore[union-attr]
    backend = BACKEND_CUDA if device == "cuda" else BACKEND_CPU
    trainer = Trainer(run.config, tmp, backend.runtime(run.config["train"]), spans={},
                      base_dir=tmp, store_root=tmp, progress=False)
    trainer.build()
    return trainer


def status(key: str) -> int:
    """A /proc/self/status value in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(name: str, device: str, steps: int) -> dict[str, Any]:
    import torch

    from specc.runtime import memory

    model, batch, rewrites = SHAPES[name]
    with tempfile.TemporaryDirectory() as d:
        trainer = built_trainer(SPEC.format(model=model, batch=batch, rewrites=rewrites),
                                device, Path(d))
        checkpointing = name.endswith("-ckpt")
        if checkpointing:
            trainer.model_raw.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        est = memory.estimate_for(trainer, trainer.model_raw, checkpointing)
        shape = memory.shape_of(trainer.model_raw)
        trainer.feed = trainer.rt.feed(trainer._batch, 0)
        trainer.train_step(0)
        before = status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for step in range(1, steps + 1):
            trainer.train_step(step)
        trainer.feed.close()
        assert est is not None and shape is not None
        if device == "cuda":
            measured = torch.cuda.max_memory_allocated()
            predicted = est.at(batch)
        else:  # the weights and AdamW's moments exist before the reset
            measured = status("VmHWM") - before
            predicted = est.at(batch) - shape.params * shape.param_bytes - 8 * shape.trainable
        return {"shape": name, "measured_mib": measured / 2**20,
                "predicted_mib": predicted / 2**20, "ratio": predicted / max(measured, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--shape", action="append", choices=SHAPES)
    ap.add_argument("--child")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.device, args.steps)))
        return
    rows = []
    for name in args.shape or SHAPES:
        out = subprocess.run([sys.executable, __file__, "--device", args.device, "--steps",
                              str(args.steps), "--child", name],
                             capture_output=True, text=True, check=True, env=MALLOC_ENV)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
