"""Per-trial overhead of the sweep machinery (ask, child process start, tell) against the trial's
own training time, for a search of tiny trials.

    .venv/bin/python benchmarks/bench_sweep_overhead.py [--trials 6] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """experiment hpo {{
  model base = gpt2(layers = 2, heads = 4, width = 128, context = 16, vocab = numbers(0..199))
  data task = arithmetic(ops = ["+", "-"], max = 100, train = 4500, test = 500)
  search optuna {{
    lr ~ loguniform(1e-4, 1e-2)
    objective = minimize loss(task.test)
    trials = {trials}
    sampler = tpe(seed = 0)
    pruner = no_pruning
  }}
  train {{ optimizer = adamw(lr = lr); batch = 32; steps = {steps}; eval_every = {steps} }}
  metrics = [loss]
}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "hpo.exp"
        spec.write_text(SPEC.format(trials=args.trials, steps=args.steps))
        specc = str(Path(sys.executable).with_name("specc"))
        t = time.perf_counter()
        subprocess.run([specc, "run", str(spec), "--root", f"{d}/runs"], check=True,
                       capture_output=True)
        wall = time.perf_counter() - t
        trains = [json.loads(m.read_text())["seconds"]
                  for m in Path(d, "runs", "hpo").glob("*/manifest.json")]
    per_trial = wall / args.trials
    train = sum(trains) / len(trains)
    print(json.dumps({"trials": args.trials, "steps_per_trial": args.steps,
                      "wall_per_trial_s": round(per_trial, 2),
                      "training_per_trial_s": round(train, 2),
                      "overhead_per_trial_s": round(per_trial - train, 2),
                      "overhead_share": round((per_trial - train) / per_trial, 3)}, indent=2))


if __name__ == "__main__":
    main()
