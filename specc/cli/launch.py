"""``specc launch SPEC --executor slurm|local``: a spec's sweeps handed to a cluster through
submitit (Note [Launch]).

Each experiment becomes one job array of workers that share its work: a grid's runs are claimed
one by one through their directories' locks (Note [Shared grids]), a search's trials through
its Optuna storage (``specc worker``), a CBS sweep's races through their locks (Note [Shared
CBS]). An experiment whose runs span several nodes (``train.nodes``) is one job with a task per
node, meeting at the job's first node (``Worker.rendezvous``). The workers run ``specc`` itself
in the job (``Worker``, pickled by submitit with cloudpickle), on the project's store, which
must be on a filesystem every node sees. A preempted or timed-out task is requeued by submitit:
its signal (USR2 on SLURM) makes the run save a checkpoint at the next step and stop
(``Interrupt``), then submitit requeues the task (``Worker.checkpoint``), which resumes from
that checkpoint, cutting any metrics logged after it, so nothing is lost or logged twice.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import attrs

from specc.cli.main import EXIT_DIAG, EXIT_OK, EXIT_USAGE
from specc.runtime.execute import EXIT_INTERRUPTED


@attrs.define
class Worker:
    """One array task: ``specc ARGV`` in the job's process; requeued as it is. A task of a
    multi-node job (``rendezvous``) adds ``--rdzv`` at the job's first node, so its tasks meet
    there as the node ranks of each run (torchrun's c10d)."""

    argv: list[str]
    rendezvous: bool = False

    def __call__(self) -> int:
        from specc.cli.main import main

        argv = list(self.argv)
        if self.rendezvous:
            argv += ["--rdzv", rendezvous_endpoint()]
        code = main(argv)
        if code == EXIT_INTERRUPTED:
            # preempted or timed out (USR2, TERM): the run saved a checkpoint at the signal and
            # stopped; submitit's own handler, restored now, requeues this task, which resumes
            signal.raise_signal(signal.SIGUSR2)
        if code not in (EXIT_OK,):
            raise RuntimeError(f"specc {' '.join(argv)} exited {code}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: the same task again (it resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def rendezvous_endpoint() -> str:
    """HOST:PORT of this job's rendezvous: its first node (this host under the local executor),
    a port derived from the job's id (the same in every task of the job)."""
    import zlib

    import submitit

    env = submitit.JobEnvironment()
    host = "127.0.0.1" if env.cluster == "local" else env.hostnames[0]
    job = str(env.job_id).split("_")[0]
    return f"{host}:{29400 + zlib.crc32(job.encode()) % 1000}"


def nodes_of(ep: Any) -> int:
    """The nodes an experiment's runs span (its first run's ``train.nodes``)."""
    first = next(iter(ep.runs()), None)
    return int(first.config["train"].get("nodes") or 1) if first is not None else 1


def plan_tasks(result: Any, args: argparse.Namespace, store: Path) -> list[tuple[str, list[
        list[str]]]]:
    """Per experiment: the argv of each of its array tasks. A multi-node experiment is one
    job whose tasks are its nodes (each runs every run, as one node rank)."""
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
        elif nodes_of(ep) > 1:  # one job; its tasks are the nodes
            argv, n = ["run", spec, "--experiment", exp.name, *common], 1
        else:  # a grid's runs or a CBS sweep's races, shared by the tasks
            argv = ["run", spec, "--experiment", exp.name, *common]
            units = ep.count
            if exp.sweep is not None and exp.sweep.kind == "cbs":  # one race per batch size
                units = sum(len(a.values) for a in exp.sweep.axes if a.path == "train.batch")
            n = min(args.workers or 1, units)
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
    nodes = {ep.experiment.name: nodes_of(ep) for ep in result.plan.experiments}
    if not tasks:
        sys.stderr.write("specc: error: nothing to launch (check --experiment)\n")
        return EXIT_USAGE
    jobs = []
    for name, argvs in tasks:
        if nodes[name] > 1:  # one job, one task per node (node ranks on this host when local)
            executor.update_parameters(**({"tasks_per_node": nodes[name]}
                                          if args.executor == "local" else
                                          {"nodes": nodes[name], "tasks_per_node": 1}))
            submitted = [executor.submit(Worker(argvs[0], rendezvous=True))]
            executor.update_parameters(**({"tasks_per_node": 1} if args.executor == "local"
                                          else {"nodes": 1, "tasks_per_node": 1}))
            print(f"experiment {name}: one job of {nodes[name]} nodes ({submitted[0].job_id}); "
                  f"logs in {folder}")
            jobs += submitted
            continue
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
            job.results()  # every task (a multi-node job has one per node)
        except Exception as exc:  # noqa: BLE001 - a task's failure is reported, not raised
            failed += 1
            sys.stderr.write(f"task {job.job_id} failed: {str(exc).splitlines()[-1][:300]}\n")
    print(f"{len(jobs) - failed} of {len(jobs)} task(s) finished")
    return EXIT_OK if failed == 0 else 1
