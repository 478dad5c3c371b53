"""Per-trial overhead of the sweep machinery against the trial's own training time, for a search
of tiny trials: trials started from the fork server (the default, Note [Trial start]) against
the baseline in the same run, a fresh interpreter per trial (``SPECC_TRIAL_START=subprocess``).

Machinery per trial = (the study's tell - ask time of the trial) - (the run's own time in its
manifest: building the model, training, evaluating, saving). The once-per-sweep start of
``specc run`` itself is reported apart.

    .venv/bin/python benchmarks/bench_sweep_overhead.py [--trials 8] [--steps 100]
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


def measure(mode: str, trials: int, steps: int) -> dict[str, float]:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "hpo.exp"
        spec.write_text(SPEC.format(trials=trials, steps=steps))
        specc = str(Path(sys.executable).with_name("specc"))
        t = time.perf_counter()
        subprocess.run([specc, "run", str(spec), "--root", f"{d}/runs"], check=True,
                       capture_output=True, env=dict(os.environ, SPECC_TRIAL_START=mode))
        wall = time.perf_counter() - t
        seconds = {m.parent.name: json.loads(m.read_text())["seconds"]
                   for m in Path(d, "runs", "hpo").glob("*/manifest.json")}
        storage = JournalStorage(JournalFileBackend(str(Path(d, "runs", "hpo.journal"))))
        [summary] = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        machinery = []
        for tr in study.trials:
            span = (tr.datetime_complete - tr.datetime_start).total_seconds()
            machinery.append(span - seconds[tr.user_attrs["specc:run"]])
        per_trial = sum((tr.datetime_complete - tr.datetime_start).total_seconds()
                        for tr in study.trials)
    return {"wall_s": round(wall, 2), "trials_s": round(per_trial, 2),
            "sweep_start_s": round(wall - per_trial, 2),
            "training_per_trial_s": round(statistics.mean(seconds.values()), 2),
            "machinery_per_trial_median_s": round(statistics.median(machinery), 3),
            "machinery_per_trial_mean_s": round(statistics.mean(machinery), 3),
            "machinery_first_trial_s": round(machinery[0], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    out = {"trials": args.trials, "steps_per_trial": args.steps}
    for mode in ("subprocess", "forkserver"):
        out[mode] = measure(mode, args.trials, args.steps)
    out["machinery_ratio_forkserver_over_subprocess"] = round(
        out["forkserver"]["machinery_per_trial_mean_s"]
        / out["subprocess"]["machinery_per_trial_mean_s"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
