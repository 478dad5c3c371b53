"""Scale-out on one machine, each against its baseline in the same run:

1. a grid of N smoke runs shared by two `specc run` processes on one store (Note [Shared grids])
   against one process doing all N: wall time, and every run trained once;
2. one run under FSDP2 (`strategy = fsdp`) on 2 CPU processes against DDP on 2 and one process:
   wall time of `specc run`, the run's own seconds, and the largest loss difference.

    .venv/bin/python benchmarks/bench_scale_out.py [--runs 6] [--steps 60] [--rounds 2]

Results: benchmarks/results/scale_out_cpu.json. Each process gets one thread
(OMP_NUM_THREADS=1), as `workers = N` and torchrun give them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = """experiment g {{
  model m = gpt2(layers = 2, heads = 2, width = 64, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+", "-"], max = 20, train = 400, test = 50)
  train {{ optimizer = adamw(lr = 3e-3); batch = 16; steps = {steps}; eval_every = {steps} }}
  metrics = [loss]
  sweep grid {{ seed in [{seeds}] }}
}}
"""

ONE = """experiment one {{
  model m = gpt2(layers = 4, heads = 4, width = 128, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+", "-"], max = 20, train = 400, test = 50)
  train {{
    optimizer = adamw(lr = 1e-3)
    batch = 32
    steps = {steps}
    eval_every = {steps}
{layout}  }}
  metrics = [loss]
}}
"""
LAYOUTS = {"one process": "", "ddp x2": "    devices = 2\n    strategy = ddp\n",
           "fsdp2 x2": "    devices = 2\n    strategy = fsdp\n"}
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def specc(*args: str) -> list[str]:
    return [sys.executable, "-m", "specc.cli.main", *args]


def grid(runs: int, steps: int) -> dict[str, float]:
    out = {}
    for procs in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            spec = Path(d) / "g.exp"
            spec.write_text(GRID.format(steps=steps, seeds=", ".join(map(str, range(runs)))))
            t = time.perf_counter()
            running = [subprocess.Popen(specc("run", str(spec), "--root", f"{d}/runs",
                                              "--quiet"), env=ENV) for _ in range(procs)]
            assert [p.wait() for p in running] == [0] * procs
            out[f"{procs} process{'es' if procs > 1 else ''}"] = time.perf_counter() - t
            found = list(Path(d, "runs").glob("g/*/manifest.json"))
            manifests = [json.loads(m.read_text()) for m in found]
            assert len(manifests) == runs and all(m["status"] == "finished" for m in manifests)
            rows = [len(Path(m.parent, "metrics.jsonl").read_text().splitlines()) for m in found]
            assert len(set(rows)) == 1, "every run logged once"
    return out


def layouts(steps: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    losses = {}
    for name, layout in LAYOUTS.items():
        with tempfile.TemporaryDirectory() as d:
            spec = Path(d) / "one.exp"
            spec.write_text(ONE.format(steps=steps, layout=layout))
            t = time.perf_counter()
            subprocess.run(specc("run", str(spec), "--root", f"{d}/runs", "--quiet"), env=ENV,
                           check=True, capture_output=True)
            wall = time.perf_counter() - t
            [m] = [json.loads(p.read_text()) for p in Path(d, "runs").glob("one/*/manifest.json")]
            rows = [json.loads(line) for line in
                    Path(d, "runs", "one", m["hash"], "metrics.jsonl").read_text().splitlines()]
            losses[name] = [r.get("loss", r.get("train_loss")) for r in rows]
            out[name] = {"wall_s": wall, "run_s": m["seconds"]}
    for name in LAYOUTS:
        out[name]["max_loss_diff_vs_one"] = max(
            abs(a - b) for a, b in zip(losses[name], losses["one process"], strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    grids = [grid(args.runs, args.steps) for _ in range(args.rounds)]
    shapes = [layouts(args.steps) for _ in range(args.rounds)]
    g = {k: statistics.median(r[k] for r in grids) for k in grids[0]}
    s = {k: {f: statistics.median(r[k][f] for r in shapes) for f in shapes[0][k]}
         for k in shapes[0]}
    result = {
        "grid": {**{k: round(v, 2) for k, v in g.items()}, "runs": args.runs,
                 "ratio_2_over_1": round(g["2 processes"] / g["1 process"], 3)},
        "layouts": {k: {f: round(v, 7 if "diff" in f else 2) for f, v in d.items()}
                    for k, d in s.items()},
        "fsdp_over_ddp_run_s": round(s["fsdp2 x2"]["run_s"] / s["ddp x2"]["run_s"], 3),
        "rounds": args.rounds, "steps": args.steps, "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    path = Path(__file__).parent / "results" / "scale_out_cpu.json"
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
