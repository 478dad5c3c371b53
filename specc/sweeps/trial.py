"""One trial in a child process: train its run, report to the study for pruning, write a result.

The payload carries the experiment's compiled IR (``specc.ir.dumps``), the run and the options:
a trial compiles nothing. The worker starts it through the fork server (``launch.py``), or as
``python -m specc.sweeps.trial PAYLOAD.json``; either way the worker classifies the outcome from
the result file and the exit status (a signal means the trial was killed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def run_payload(payload_path: str) -> int:
    """Train the trial a payload file describes; returns its exit status."""
    payload = json.loads(Path(payload_path).read_text())
    import optuna

    from specc.compiler import ir
    from specc.compiler.plan import Run
    from specc.components.metrics import metric_key
    from specc.runtime.execute import Runner, RunOptions
    from specc.runtime.loop import RunStopped
    from specc.store.runs import MetricsLog, run_dir
    from specc.sweeps.space import build_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = ir.loads(payload["experiment_ir"])
    assert isinstance(exp, ir.Experiment) and exp.search is not None
    run = Run(experiment=exp.name, index=payload["number"], bindings=payload["bindings"],
              config=payload["config"], hash=payload["hash"])
    opts = RunOptions(spec=Path(payload["spec"]), root=Path(payload["root"]),
                      backend=payload.get("backend"), profile=payload.get("profile"),
                      quiet=True, experiment=exp.name)
    runner = Runner(opts, plan_hash=payload.get("plan_hash"))
    objectives = payload["objectives"]
    trial = None
    if len(objectives) == 1:
        from specc.sweeps.study import open_storage

        study = optuna.load_study(study_name=payload["study"],
                                  storage=open_storage(payload["storage"]),
                                  pruner=build_pruner(exp.search))
        trial = optuna.trial.Trial(study, payload["trial_id"])
    key = metric_key(objectives[0][1])

    def hook(row: dict[str, Any]) -> None:
        if trial is None or key not in row:
            return
        trial.report(float(row[key]), int(row["step"]))
        if trial.should_prune():
            raise RunStopped("pruned", f"pruned at step {row['step']} ({key} {row[key]:.4g})")

    runner.eval_hook = hook
    code = runner.run_one(exp, run)
    rows = MetricsLog(run_dir(Path(payload["root"]), exp.name, run.hash) / "metrics.jsonl").rows()
    out = {"code": code, "status": runner.last_status or ("finished" if code == 0 else "failed"),
           "reason": runner.last_reason, "row": rows[-1] if rows else {}}
    Path(payload["result"]).write_text(json.dumps(out))
    return code


def main(argv: list[str] | None = None) -> int:
    from specc.sweeps.launch import die_with_parent

    die_with_parent()
    return run_payload((argv or sys.argv[1:])[0])


if __name__ == "__main__":
    raise SystemExit(main())
