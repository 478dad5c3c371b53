"""``specc launch SPEC --executor slurm|local``: a spec's sweeps handed to a cluster through
submitit (Note [Launch]).

Each experiment becomes one job array of workers that share its runs: a grid's runs are claimed
one by one through their directories' locks (Note [Shared grids]), a search's trials through
its Optuna storage (``specc worker``), a CBS race runs in one task. The workers run ``specc``
itself in the job (``Worker``, pickled by submitit with cloudpickle), on the project's store,
which must be on a filesystem every node sees. A preempted or timed-out task is requeued by
submitit (``Checkpointable``); the requeued task resumes each unfinished run from its last
checkpoint, cutting the metrics logged after it, so nothing is lost or logged twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs

from specc.cli.main import EXIT_DIAG, EXIT_OK, EXIT_USAGE


@attrs.define
class Worker:
    """One array task: ``specc ARGV`` in the job's process; requeued as it is."""

    argv: list[str]

    def __call__(self) -> int:
        from specc.cli.main import main

        code = main(self.argv)
        if code not in (EXIT_OK,):
            raise RuntimeError(f"specc {' '.join(self.argv)} exited {code}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: the same task again (it resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def plan_tasks(result: Any, args: argparse.Namespace, store: Path) -> list[tuple[str, list[
        list[str]]]]:
    """Per experiment: the argv of each of its array tasks."""
    common = ["--store", str(store), "--quiet"]
    if args.profile:
        common += ["--profile", args.profile]
    if args.backend:
        common += ["--backend", args.backend]
    out = []
    for ep in result.plan.experiments:
        exp = ep.experiment
        if args.experiment and exp.name != args.experiment:
            continue
        spec = str(Path(args.file).resolve())
        if exp.search is not None:
            argv = ["worker", spec, "--experiment", exp.name, *common]
            argv.remove("--quiet")
            if args.storage:
                argv += ["--storage", args.storage]
            n = args.workers or 1
        elif exp.sweep is not None and exp.sweep.kind == "cbs":
            argv, n = ["run", spec, "--experiment", exp.name, *common], 1
        else:
            argv = ["run", spec, "--experiment", exp.name, *common]
            n = min(args.workers or 1, ep.count)
        out.append((exp.name, [list(argv) for _ in range(n)]))
    return out


def cmd_launch(args: argparse.Namespace) -> int:
    from specc.compiler.pipeline import compile_file
    from specc.store.location import store_root

    result = compile_file(args.file, profile=args.profile, backend=args.backend)
    if result.diagnostics:
        sys.stderr.write(result.render() + "\n")
    if result.plan is None or not result.ok:
        return EXIT_DIAG
    import submitit

    store = store_root(args.root, args.file).resolve()
    folder = Path(args.folder) if args.folder else store / "launch"
    executor = submitit.AutoExecutor(folder=folder, cluster=args.executor)
    params: dict[str, Any] = {"timeout_min": args.timeout_min, "name": "specc"}
    if args.executor == "slurm":
        params.update(slurm_partition=args.partition, gpus_per_node=args.gpus_per_node,
                      slurm_array_parallelism=args.array_parallelism,
                      slurm_signal_delay_s=120)
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    tasks = plan_tasks(result, args, store)
    if not tasks:
        sys.stderr.write("specc: error: nothing to launch (check --experiment)\n")
        return EXIT_USAGE
    jobs = []
    for name, argvs in tasks:
        with executor.batch():  # one job array per experiment
            submitted = [executor.submit(Worker(a)) for a in argvs]
        ids = ", ".join(j.job_id for j in submitted)
        print(f"experiment {name}: {len(submitted)} task(s) ({ids}); logs in {folder}")
        jobs += submitted
    print(f"store: {store}")
    if not args.wait:
        return EXIT_OK
    failed = 0
    for job in jobs:
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001 - a task's failure is reported, not raised
            failed += 1
            sys.stderr.write(f"task {job.job_id} failed: {str(exc).splitlines()[-1][:300]}\n")
    print(f"{len(jobs) - failed} of {len(jobs)} task(s) finished")
    return EXIT_OK if failed == 0 else 1
