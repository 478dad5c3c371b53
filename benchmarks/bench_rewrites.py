"""The compiler's rewrites (Note [Rewrites]) against `train.rewrites = none`, in one run: each
side trains in its own child process (so each has its own peak memory), both launched by this
script one after the other, round after round.

    .venv/bin/python benchmarks/bench_rewrites.py                 # CPU: vocab 50,257, width 128,
                                                                  # context 256, batch 16
    python benchmarks/bench_rewrites.py --device cuda --shape gpt2-124m   (GPU, when lent)

Reported per side: the median step time (specc's real step, Trainer.train_step, after warm-up)
and the step's peak memory: on CPU the growth of the resident set over the steps (Linux's peak
RSS, reset after the model, data and optimizer exist, minus the RSS then, with glibc's
mmap threshold fixed so freed tensors leave the resident set: bench_memory.MALLOC_ENV); on CUDA
torch.cuda.max_memory_allocated. Ratios are rewrites / none.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_memory import MALLOC_ENV, built_trainer, status  # the peak RSS follows live tensors

SHAPES = {
    "cpu-50k": dict(model="gpt2(layers = 2, heads = 4, width = 128, context = 256, "
                          "vocab = numbers(0..50240))", batch=16, precision="fp32"),
    "gpt2-124m": dict(model="gpt2(layers = 12, heads = 12, width = 768, context = 1024, "
                            "vocab = numbers(0..50240))", batch=16, precision="bf16"),
}
SPEC = """experiment bench {{
  model lm = {model}
  data text = zipf_ngrams(vocab = 50257, rules = 4096, heldout = 4)
  train {{
    optimizer = adamw(lr = 3e-4, weight_decay = 0.01)
    batch = {batch}
    steps = 100000
    precision = {precision}
    rewrites = {rewrites}
  }}
}}
"""


def child(shape: str, rewrites: str, device: str, steps: int, warmup: int) -> dict[str, Any]:
    import torch

    with tempfile.TemporaryDirectory() as d:
        trainer = built_trainer(SPEC.format(**SHAPES[shape], rewrites=rewrites), device, Path(d))
        trainer.feed = trainer.rt.feed(trainer._batch, 0)
        trainer.train_step(0)  # the optimizer's state exists from here on
        before = status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for step in range(1, warmup + steps + 1):
            t = time.perf_counter()
            trainer.train_step(step)
            if device == "cuda":
                torch.cuda.synchronize()
            if step > warmup:
                times.append(time.perf_counter() - t)
        trainer.feed.close()
        peak = (torch.cuda.max_memory_allocated() if device == "cuda"
                else status("VmHWM") - before)
        return {"rewrites": trainer.train["rewrites"], "step_s": statistics.median(times),
                "peak_step_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="cpu-50k")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", choices=["none", "auto"])
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.shape, args.child, args.device, args.steps, args.warmup)))
        return
    sides: dict[str, list[dict[str, Any]]] = {"none": [], "auto": []}
    for _ in range(args.rounds):
        for side in ("none", "auto"):
            out = subprocess.run([sys.executable, __file__, "--shape", args.shape, "--device",
                                  args.device, "--steps", str(args.steps), "--warmup",
                                  str(args.warmup), "--child", side],
                                 capture_output=True, text=True, check=True, env=MALLOC_ENV)
            sides[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary: dict[str, Any] = {"shape": args.shape, "device": args.device}
    for side, rows in sides.items():
        summary[side] = {"rewrites": rows[0]["rewrites"],
                         "step_s": statistics.median(r["step_s"] for r in rows),
                         "peak_step_mib": statistics.median(r["peak_step_mib"] for r in rows)}
    summary["time_ratio"] = summary["auto"]["step_s"] / summary["none"]["step_s"]
    summary["memory_ratio"] = summary["auto"]["peak_step_mib"] / summary["none"]["peak_step_mib"]
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
