"""One trial in a child process: train its run, report to the study for pruning, write a result.

Run as ``python -m specc.sweeps.trial PAYLOAD.json``. The worker that started it classifies the
outcome from the result file and the exit status (a signal means the trial was killed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _die_with_parent() -> None:
    """Linux: the trial is killed when its worker dies, so no orphan keeps training."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    payload = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    import optuna

    from specc.compiler.pipeline import compile_file
    from specc.compiler.plan import Run
    from specc.components.metrics import metric_key
    from specc.runtime.execute import Runner
    from specc.runtime.loop import RunStopped
    from specc.store.runs import MetricsLog, run_dir

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = compile_file(payload["spec"], backend=payload.get("backend"),
                          profile=payload.get("profile"))
    exp = result.program.experiment(payload["experiment"]) if result.program else None
    assert exp is not None, result.render()
    run = Run(experiment=exp.name, index=payload["number"], bindings=payload["bindings"],
              config=payload["config"], hash=payload["hash"])
    args = argparse.Namespace(file=payload["spec"], root=payload["root"], force=False,
                              backend=payload.get("backend"), profile=payload.get("profile"),
                              quiet=True, experiment=exp.name)
    runner = Runner(result, args)
    objectives = payload["objectives"]
    trial = None
    if len(objectives) == 1:
        storage = payload["storage"]
        from specc.sweeps.study import open_storage

        study = optuna.load_study(study_name=payload["study"], storage=open_storage(storage),
                                  pruner=_pruner(payload))
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


def _pruner(payload: dict[str, Any]) -> Any:
    from specc.compiler.pipeline import compile_file
    from specc.sweeps.space import build_pruner

    result = compile_file(payload["spec"], profile=payload.get("profile"), stop_after="check")
    exp = result.program.experiment(payload["experiment"]) if result.program else None
    assert exp is not None and exp.search is not None
    return build_pruner(exp.search)


if __name__ == "__main__":
    raise SystemExit(main())
