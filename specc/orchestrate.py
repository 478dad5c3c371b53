"""``specc run``: the orchestration layer, above the sweeps and the runtime.

It compiles the spec, runs the experiments a run starts from (`checkpoint(...)`) first, and
chooses each experiment's strategy: a grid's runs one by one through the runtime (which runs
exactly one run), a search through the sweep workers, a CBS sweep through its races. Only typed
records cross the boundaries below it (``RunOptions``, ``Run``, the compiled IR).

    specc.cli  ->  specc.orchestrate  ->  specc.sweeps  ->  specc.runtime  ->  backends
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from specc.compiler import ir
from specc.compiler.pipeline import compile_file
from specc.compiler.plan import ExperimentPlan, Run
from specc.runtime.execute import (
    BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_RUNS,
    Runner,
    RunOptions,
)
from specc.store.runs import finished_runs


def run_spec(args: argparse.Namespace) -> int:
    from specc.runtime import progress

    opts = RunOptions.from_args(args)
    with progress.to_stderr(opts.json):
        code = _run_spec(opts)
    return code


def _run_spec(opts: RunOptions) -> int:
    result = compile_file(opts.spec, backend=opts.backend, profile=opts.profile)
    if result.diagnostics:
        sys.stderr.write(result.render() + "\n")
    if result.plan is None:
        return EXIT_FAILED
    if not opts.python and refuse_python(result.program, result.sources):
        return EXIT_FAILED
    orchestrator = Orchestrator(Runner(opts, sources=result.sources,
                                       plan_hash=result.plan.hash), result.loaded)
    code = EXIT_OK
    for ep in result.plan.experiments:
        if opts.experiment and ep.experiment.name != opts.experiment:
            continue
        code = max(code, orchestrator.run_experiment(ep))
        if code == EXIT_INTERRUPTED:
            break
    if opts.json:
        sys.stdout.write(json.dumps(_runs_of_plan(opts, result.plan), indent=2, default=str)
                         + "\n")
    return code


def _runs_of_plan(opts: RunOptions, plan: Any) -> dict[str, Any]:
    """`specc run --json`: every stored run of this plan (its manifest's plan hash), with its
    status, directory and last evaluation row."""
    from specc.store.runs import MetricsLog, read_manifest

    runs = []
    for ep in plan.experiments:
        if opts.experiment and ep.experiment.name != opts.experiment:
            continue
        for d in sorted((opts.root / ep.experiment.name).glob("*/manifest.json")):
            m = read_manifest(d.parent) or {}
            if m.get("plan_hash") != plan.hash:
                continue
            rows = MetricsLog(d.parent / "metrics.jsonl").rows()
            runs.append({"experiment": ep.experiment.name, "name": m.get("name"),
                         "hash": d.parent.name, "status": m.get("status"),
                         "reason": m.get("reason"), "bindings": m.get("bindings"),
                         "path": str(d.parent), "last": rows[-1] if rows else None})
    return {"plan": plan.hash, "spec": str(opts.spec), "runs": runs}


def refuse_python(program: ir.Program | None, sources: Any) -> bool:
    """``--no-python``: report every component a run would import; True when there is one."""
    from specc import diagnostics as dg

    diags = [dg.make("python-refused", c.span,
                     message=f"{c.name} is defined in {c.python[2]}, and --no-python refuses to "
                             "import user code",
                     help="run without --no-python once you trust the file")
             for c in python_components(program)]
    if diags:
        sys.stderr.write(dg.render_all(diags, sources) + "\n")
    return bool(diags)


def python_components(program: ir.Program | None) -> list[ir.Comp]:
    """Every component of the program that a run would import (a component file or a
    plug-in), once per place it is written."""
    found: dict[tuple[str, int, int], ir.Comp] = {}

    def walk(v: Any) -> None:
        if isinstance(v, ir.Comp) and v.python:
            found.setdefault((v.span.file, v.span.line, v.span.col), v)
        if isinstance(v, tuple):
            for x in v:
                walk(x)
        elif attrs.has(type(v)):
            for f in attrs.fields(type(v)):
                if f.name != "span":
                    walk(getattr(v, f.name))

    walk(program)
    return list(found.values())


class Orchestrator:
    """Runs what a compiled spec plans, through a ``Runner`` (the runtime: one run at a time)."""

    def __init__(self, runner: Runner, loaded: Any = None) -> None:
        self.runner = runner
        self.loaded = loaded

    def run_experiment(self, ep: ExperimentPlan) -> int:
        code = self._run_experiment(ep)
        if ep.experiment.analysis is not None and code != EXIT_INTERRUPTED \
                and not self.runner.opts.shard:
            code = max(code, self.run_analysis(ep))
        return code

    def run_analysis(self, ep: ExperimentPlan) -> int:
        """The experiment's `analysis` over its finished runs of the current plan: printed,
        stored as runs/<experiment>/analysis.json, and a failed check is an error at its line
        (exit 1)."""
        from specc.report.analysis import evaluate, runs_of, write

        exp = ep.experiment
        assert exp.analysis is not None
        names = [r.hash for r in ep.runs()] if ep.strategy != "optuna" else \
            [p.name for p in finished_runs(self.runner.root, exp.name)]
        runs = runs_of(self.runner.root, exp.name, names)
        outcome = evaluate(exp.analysis, runs)
        path = write(self.runner.root, exp.name, outcome, self.runner.plan_hash or "")
        self.runner.say(f"analysis of {exp.name} over {len(runs)} finished "
                        f"run{'s' if len(runs) != 1 else ''} ({path}):")
        for name, value in outcome.values.items():
            if not isinstance(value, dict) or set(value) <= {"slope", "intercept", "r2", "n"}:
                self.runner.say(f"  {name} = {_short_value(value)}")
        code = EXIT_OK
        for check in outcome.checks:
            if check.passed:
                self.runner.say(f"  check {check.text}: passed")
            else:
                self.runner.error(f"analysis check failed: {check.text} ({check.detail})",
                                  check.span, code="check-failed")
                code = EXIT_FAILED
        return code

    def _run_experiment(self, ep: ExperimentPlan) -> int:
        exp = ep.experiment
        if ep.strategy == "optuna":
            return self.run_search(exp)
        if ep.strategy == "cbs":  # Note [Shared CBS]: races are claimed like a grid's runs
            from specc.sweeps.cbs import run_cbs

            workers = self.runner.opts.workers or _int_setting(exp, "workers", 1)
            if workers > 1 and not os.environ.get("SPECC_GRID_WORKER"):
                code = self.run_grid_workers(exp, workers)
                if code != EXIT_OK:
                    return code
            return run_cbs(self.runner, exp)  # after workers: read back, the table printed
        count = ep.count
        limit = self.runner.opts.max_runs or MAX_RUNS
        if count > limit:
            bound = "" if ep.count_exact else "at most "
            self.runner.error(f"experiment {exp.name} plans {bound}{count:,} runs, more than the "
                              f"limit of {limit:,}",
                              exp.sweep.span if exp.sweep is not None else exp.span,
                              code="too-many-runs",
                              help="narrow the sweep, or raise the limit with --max-runs N")
            return EXIT_FAILED
        shard = self.runner.opts.shard
        workers = self.runner.opts.workers or _int_setting(exp, "workers", 1)
        if workers > 1 and shard is None and not os.environ.get("SPECC_GRID_WORKER"):
            return self.run_grid_workers(exp, workers)
        self.runner.say(f"experiment {exp.name}: {count} run{'s' if count != 1 else ''}"
                        + (f" (shard {shard[0]}/{shard[1]})" if shard else ""))
        return self.run_grid(exp, ep, shard)

    def run_grid(self, exp: ir.Experiment, ep: ExperimentPlan,
                 shard: tuple[int, int] | None) -> int:
        """Note [Shared grids]: each run is claimed through its directory's lock, so any number
        of `specc run` processes on one store (this one's `workers`, other terminals, other
        machines on a shared filesystem) train each run once. A run another process is
        training is passed over, then waited for at the end (finished by then, or taken over
        if that process died). `--shard i/n` takes every n-th run, statically."""
        code = EXIT_OK
        later: list[Run] = []
        for run in ep.runs():  # streamed: the first run starts before the rest are planned
            if shard is not None and run.index % shard[1] != shard[0]:
                continue
            dep = self.ensure_dependencies(exp, run)
            if dep != EXIT_OK:
                return dep
            got = self.runner.run_one(exp, run, wait=False)
            if got == BUSY:
                later.append(run)
                continue
            code = max(code, got)
            if code == EXIT_INTERRUPTED:
                return code
        for run in later:
            self.runner.say(f"  {run.name} ({run.hash}): another process is training it; "
                            "waiting")
            code = max(code, self.runner.run_one(exp, run))
            if code == EXIT_INTERRUPTED:
                break
        return code

    def run_grid_workers(self, exp: ir.Experiment, workers: int) -> int:
        """`workers = N`: N local `specc run` processes share the grid (Note [Shared grids])."""
        opts = self.runner.opts
        cmd = [sys.executable, "-m", "specc.cli.main", "run", str(opts.spec), "--experiment",
               exp.name, "--root", str(opts.root), "--quiet"]
        if opts.profile:
            cmd += ["--profile", opts.profile]
        if opts.backend:
            cmd += ["--backend", opts.backend]
        if opts.force:
            cmd += ["--force"]
        if opts.max_runs:
            cmd += ["--max-runs", str(opts.max_runs)]
        self.runner.say(f"experiment {exp.name}: {workers} local workers share its runs")
        env = dict(os.environ, SPECC_GRID_WORKER="1")
        # The cores are shared among the workers (oversubscribed CPU threads spin and crawl).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        return max(codes) if all(c >= 0 for c in codes) else EXIT_FAILED

    # ------------------------------------------------------------ searches
    def run_search(self, exp: ir.Experiment) -> int:
        """Optuna ask/tell over N local workers, supervised; see specc/sweeps/worker.py."""
        from specc.sweeps import study as S
        from specc.sweeps.worker import Sweep, summary

        dep = self.ensure_dependencies(exp, _probe_run(exp))
        if dep != EXIT_OK:
            return dep
        opts, say = self.runner.opts, self.runner.say
        sweep = Sweep(str(opts.spec), exp, opts.root, storage=opts.storage,
                      profile=opts.profile, backend=opts.backend)
        workers = opts.workers or _int_setting(exp, "workers", 1)
        say(f"search {exp.name}: study {sweep.name} in {sweep.shown_url}; {sweep.cap} trials, "
            f"{workers} worker{'s' if workers != 1 else ''}")
        if workers <= 1:
            sweep.work(log=self.runner.say)
        else:
            cmd = [sys.executable, "-m", "specc.cli.main", "worker", str(self.runner.spec),
                   "--experiment", exp.name, "--root", str(self.runner.root)]
            if self.runner.opts.profile:
                cmd += ["--profile", self.runner.opts.profile]
            if self.runner.opts.backend:
                cmd += ["--backend", self.runner.opts.backend]
            # The storage travels in the environment, not argv: `ps` never shows a password.
            env = dict(os.environ, SPECC_STORAGE=sweep.url)
            procs = [subprocess.Popen([*cmd, "--worker-index", str(i)], env=env)
                     for i in range(workers)]
            while any(p.poll() is None for p in procs):
                time.sleep(1.0)
                S.reap(sweep.study, sweep.policy)
            S.reap(sweep.study, sweep.policy)
            if not sweep.done():  # retries enqueued after the workers left
                sweep.work(log=self.runner.say)
        rows = summary(sweep)
        finished = [r for r in rows if r["state"] == "COMPLETE"]
        self.runner.say(f"search {exp.name}: {len(finished)} complete, "
                 f"{sum(r['state'] == 'PRUNED' for r in rows)} pruned, "
                 f"{sum(r['state'] == 'FAIL' for r in rows)} failed")
        if finished and len(sweep.objectives) == 1:
            best = sweep.study.best_trial
            self.runner.say(f"  best: trial {best.number} {best.params} -> {best.value:.4g}")
        return EXIT_OK

    # ------------------------------------------------------------ dependencies
    def ensure_dependencies(self, exp: ir.Experiment, run: Run) -> int:
        """Run the experiments whose checkpoints this run starts from, when not done yet:
        every `checkpoint(...)` in its configuration, the model or nested anywhere."""
        for model in _checkpoints_in(run.config):
            code = self._ensure_dependency(exp, model)
            if code != EXIT_OK:
                return code
        return EXIT_OK

    def _ensure_dependency(self, exp: ir.Experiment, model: dict[str, Any]) -> int:
        ref = model.get("experiment")
        name = ref.get("ref") if isinstance(ref, dict) else None
        if not name:
            return EXIT_OK
        done = finished_runs(self.runner.root, name)
        pinned = model.get("runs")  # Note [Pinned checkpoints]
        if pinned is not None:
            done = [r for r in done if r.name in set(pinned)]
        if model.get("run"):
            done = [r for r in done if r.name.startswith(str(model["run"]))]
        if done:
            return EXIT_OK
        file = self._file_defining(name)
        if file is None:
            return EXIT_OK
        self.runner.say(f"{exp.name} starts from checkpoint({name}), which has no finished run of "
                 f"its current definition: running {name} first")
        profile = self.runner.opts.profile
        dep = compile_file(file, backend=self.runner.opts.backend, profile=profile)
        if not dep.ok and profile is not None:  # the dependency may not define the profile
            dep = compile_file(file, backend=self.runner.opts.backend)
        if dep.plan is None:
            sys.stderr.write(dep.render() + "\n")
            return EXIT_FAILED
        sub = Orchestrator(Runner(attrs.evolve(self.runner.opts, spec=Path(file)),
                                  sources=dep.sources, plan_hash=dep.plan.hash), dep.loaded)
        for ep in dep.plan.experiments:
            if ep.experiment.name == name:
                return sub.run_experiment(ep)
        return EXIT_OK

    def _file_defining(self, name: str) -> str | None:
        loaded = self.loaded
        if loaded is None:
            return None
        from specc.lang import syntax as S

        for path, module in loaded.modules.items():
            for item in module.items:
                if isinstance(item, S.Experiment) and item.name == name:
                    return path
        return None


def _checkpoints_in(config: Any) -> list[dict[str, Any]]:
    """Every `checkpoint(...)` a resolved configuration holds, wherever it is nested."""
    found, stack = [], [config]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if v.get("component") == "checkpoint":
                found.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def _int_setting(exp: ir.Experiment, name: str, default: int) -> int:
    block = exp.search or exp.sweep
    v = block.setting(name) if block is not None else None
    return int(v.value) if isinstance(v, ir.Const) and isinstance(v.value, int) else default


def _probe_run(exp: ir.Experiment) -> Run:
    """A run with the experiment's fixed configuration (to find its dependencies)."""
    from specc.compiler.plan import _Template

    config = _Template(exp).resolve({})
    return Run(experiment=exp.name, index=0, bindings={}, config=config, hash="")


def _short_value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_short_value(x)}" for k, x in v.items())
    return f"{v:.4g}" if isinstance(v, float) else str(v)
