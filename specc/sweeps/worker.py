"""Workers: ask a trial, run it in a child process with heartbeats, classify, tell, retry.

``specc run`` starts N local workers and supervises them (reaping trials of dead workers);
``specc worker SPEC --storage URL`` joins the same study from any machine.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.compiler.plan import Run, RunMaker
from specc.components.metrics import metric_key
from specc.diagnostics import SpeccError
from specc.store.urls import redact
from specc.sweeps import launch, space
from specc.sweeps import study as S


class Sweep:
    """Everything a worker needs to run trials of one search experiment."""

    def __init__(self, spec: str, exp: ir.Experiment, root: Path, *, storage: str | None,
                 profile: str | None, backend: str | None, worker: int = 0,
                 create: bool = True) -> None:
        import optuna

        assert exp.search is not None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.spec, self.exp, self.search, self.root = spec, exp, exp.search, root
        self.profile, self.backend = profile, backend
        self.url = storage or S.storage_url(exp.search, exp.name, root)
        self.name = S.study_name(exp)
        self.objectives = space.objectives(exp.search)
        self.cap = int(self.search.setting("trials").value)  # type: ignore[union-attr]
        self.policy = S.retry_policy(self.search)
        self.maker = RunMaker(exp)
        self.exp_ir = ir.dumps(exp)
        directions = [d + "" for d, _ in self.objectives]
        storage = S.open_storage(self.url, create=create)
        sampler = space.build_sampler(self.search, worker=worker)
        pruner = space.build_pruner(self.search)
        if not create:  # a reader (the report) never creates a study
            try:
                self.study = optuna.load_study(study_name=self.name, storage=storage,
                                               sampler=sampler, pruner=pruner)
            except KeyError as exc:
                raise SpeccError(f"no study {self.name} in {self.shown_url} yet") from exc
            return
        self.study = optuna.create_study(
            study_name=self.name, storage=storage, load_if_exists=True, sampler=sampler,
            pruner=pruner, directions=directions)

    @property
    def shown_url(self) -> str:
        """The storage as printed: a database password is never shown."""
        return redact(self.url)

    def trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def done(self) -> bool:
        import optuna

        trials = self.trials()
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
        return S.slots_used(trials) >= self.cap and not waiting

    def run_for(self, values: dict[str, ir.Value], number: int) -> Run:
        """The trial's run: Note [One way to make a run] (its objective is measured)."""
        return self.maker.make(values, number)

    # ------------------------------------------------------------ one worker's loop
    def work(self, log: Any = print, max_trials: int | None = None) -> int:
        """Run trials until the budget is spent (or ``max_trials`` of them ran here). Returns
        how many this worker ran."""
        import optuna

        ran = 0
        while True:
            S.reap(self.study, self.policy)
            if self.done() or (max_trials is not None and ran >= max_trials):
                return ran
            trial = self.study.ask()
            if S.budget_index(self.trials(), trial.number) > self.cap:
                self.study._storage.set_trial_user_attr(
                    trial._trial_id, S.OVER, True)
                space.tell(self.study, trial, state=optuna.trial.TrialState.FAIL)
                if self.done():
                    return ran
                continue
            # Parameters first, then the claim: a claimed trial always has its parameters, so a
            # retry after its worker dies repeats exactly them.
            values = space.sample(trial, self.search)
            S.claim(self.study, trial)
            self.run_trial(trial, values, log)
            ran += 1

    def run_trial(self, trial: Any, values: dict[str, ir.Value], log: Any) -> None:
        import optuna

        run = self.run_for(values, trial.number)
        config, run_hash = run.config, run.hash
        self.study._storage.set_trial_user_attr(trial._trial_id, S.RUN,
                                                run_hash)
        bindings = {k: ir.plain(v) for k, v in values.items()}
        with tempfile.TemporaryDirectory() as d:
            payload = {
                "spec": self.spec, "experiment": self.exp.name, "profile": self.profile,
                "backend": self.backend, "root": str(self.root), "number": trial.number,
                "trial_id": trial._trial_id, "study": self.name,
                "storage": self.url, "bindings": bindings, "config": config, "hash": run_hash,
                "objectives": self.objectives, "result": str(Path(d) / "result.json"),
                "experiment_ir": self.exp_ir,  # the compiled IR: a trial compiles nothing
            }
            (Path(d) / "payload.json").write_text(json.dumps(payload))
            # The trial's output goes to its own log file in the run directory, never to a pipe
            # (a pipe nobody reads fills at 64 KiB and blocks the trial forever).
            log_path = trial_log(self.root, self.exp.name, run_hash, trial.number)
            proc = launch.start("specc.sweeps.trial.run_payload", (str(Path(d) / "payload.json"),),
                                log_path)  # Note [Trial start]
            last = time.time()
            while proc.poll() is None:
                time.sleep(0.05)
                if time.time() - last > S.HEARTBEAT_S:
                    S.beat(self.study, trial._trial_id)
                    last = time.time()
            output = log_tail(log_path)
            result_path = Path(payload["result"])
            result = json.loads(result_path.read_text()) if result_path.exists() else None
        failure, reason = classify(proc.returncode, result, output)
        name = f"trial {trial.number} " + ", ".join(f"{k}={v}" for k, v in bindings.items())
        if failure is None and result is not None and result["status"] == "pruned":
            space.tell(self.study, trial, state=optuna.trial.TrialState.PRUNED)
            log(f"  {name}: pruned ({result['reason']})")
            return
        if failure is None and result is not None:
            row = result["row"]
            keys = [metric_key(m) for _, m in self.objectives]
            if all(k in row for k in keys):
                vals = [float(row[k]) for k in keys]
                space.tell(self.study, trial, vals if len(vals) > 1 else vals[0])
                log(f"  {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in
                                              zip(keys, vals, strict=True)))
                return
            failure, reason = "exception", f"the objective {keys} was not measured"
        assert failure is not None
        retried = S.fail_and_maybe_retry(self.study, trial._trial_id,
                                         trial.number, trial.params, trial.user_attrs,
                                         failure, reason, self.policy)
        log(f"  {name}: failed ({failure}: {reason})" + ("; retrying" if retried else ""))
        tail = output.rstrip().splitlines()[-_TAIL_LINES:]
        if tail:
            log(f"    last lines of {log_path}:\n" + "\n".join("      " + t for t in tail))


_TAIL_LINES = 12


def trial_log(root: Path, experiment: str, run_hash: str, number: int) -> Path:
    """``<run dir>/trial-N.log``: everything trial N printed."""
    from specc.store.runs import run_dir

    path = run_dir(root, experiment, run_hash)
    path.mkdir(parents=True, exist_ok=True)
    return path / f"trial-{number}.log"


def log_tail(path: Path, size: int = 8192) -> str:
    """The last ``size`` bytes of a log, decoded leniently."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def classify(code: int, result: dict[str, Any] | None, output: str) -> tuple[str | None, str]:
    """(failure class or None, reason) from a trial's exit status and result file."""
    if code < 0:
        return "killed", f"killed by signal {-code}"
    if result is None:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        return "exception", f"exit status {code}: {tail[0]}"
    if result["status"] in ("finished", "pruned"):
        return None, ""
    reason = str(result.get("reason") or f"exit status {code}")
    if "loss became" in reason:
        return "nan", reason
    if "out of memory" in reason:
        return "oom", reason
    if result["status"] == "interrupted":
        return "killed", reason
    return "exception", reason


def summary(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial: number, state, params, values, failure, retry of, run hash."""
    rows = []
    for t in sweep.trials():
        if t.user_attrs.get(S.OVER):
            continue
        rows.append({"number": t.number, "state": t.state.name, "params": t.params,
                     "values": t.values, "failure": t.user_attrs.get(S.FAILURE),
                     "reason": t.user_attrs.get(S.REASON),
                     "retry_of": t.user_attrs.get(S.RETRY_OF),
                     "superseded": bool(t.user_attrs.get(S.SUPERSEDED)),
                     "run": t.user_attrs.get(S.RUN)})
    return rows
