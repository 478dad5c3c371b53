"""``specc run``: compile, plan, run each run on its backend, record everything in the store."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import attrs

from specc import diagnostics as dg
from specc.compiler import ir
from specc.compiler.plan import Run
from specc.runtime import progress
from specc.store import index
from specc.store.files import DiskFull, remove_entries
from specc.store.runs import (
    git_commit,
    now,
    read_manifest,
    run_dir,
    versions,
    write_manifest,
)

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
LOCK_NAME = ".lock"
BUSY = -1  # run_one(wait=False): another process is training that run right now
MAX_RUNS = 10_000  # `specc run` refuses a bigger grid unless --max-runs says otherwise


@attrs.frozen(kw_only=True)
class RunOptions:
    """What `specc run` (or a worker, or a trial) was asked, as a typed record: it crosses
    every boundary below the command line (never argparse)."""

    spec: Path
    root: Path = Path("runs")
    backend: str | None = None
    profile: str | None = None
    force: bool = False
    quiet: bool = False
    experiment: str | None = None
    max_runs: int | None = None
    storage: str | None = None
    workers: int | None = None
    shard: tuple[int, int] | None = None  # (i, n): every n-th run from the i-th
    python: bool = True  # False: `--no-python`, never import a component file or plug-in
    trackers: tuple[str, ...] = ()  # `--tracker NAME`: added to every run's trackers
    json: bool = False  # `--json`: the runs as JSON on stdout, everything else on stderr
    rdzv: str | None = None  # HOST:PORT of a multi-node run's rendezvous (`--rdzv`)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        from specc.store.location import store_root

        return cls(spec=Path(args.file), root=store_root(args.root, args.file),
                   backend=args.backend,
                   profile=args.profile, force=bool(getattr(args, "force", False)),
                   quiet=bool(getattr(args, "quiet", False)),
                   experiment=getattr(args, "experiment", None),
                   max_runs=getattr(args, "max_runs", None),
                   storage=getattr(args, "storage", None), workers=getattr(args, "workers", None),
                   shard=getattr(args, "shard", None),
                   python=not getattr(args, "no_python", False),
                   trackers=tuple(getattr(args, "tracker", None) or ()),
                   json=bool(getattr(args, "json", False)),
                   rdzv=getattr(args, "rdzv", None) or os.environ.get("SPECC_RDZV"))


class Runner:
    """Runs what a compiled spec plans: dependencies first, then each run (grid), or hands the
    experiment to its strategy (search, CBS). A trial builds one from its payload, without
    compiling anything (the IR travels with it)."""

    def __init__(self, opts: RunOptions, *, sources: dg.Sources | None = None,
                 plan_hash: str | None = None, loaded: Any = None) -> None:
        self.opts = opts
        self.sources = sources if sources is not None else dg.Sources()
        self.plan_hash = plan_hash
        self.loaded = loaded
        self.root = Path(opts.root)
        self.spec = Path(opts.spec)
        self.spec_hash = hashlib.sha256(self.spec.read_bytes()).hexdigest()[:16]
        self.quiet = opts.quiet
        # Set by sweeps: called with each evaluation row (may raise RunStopped("pruned", ...)).
        self.eval_hook: Any = None
        self.last_status: str | None = None
        self.last_reason: str | None = None
        self.last_row: dict[str, Any] = {}

    def say(self, text: str) -> None:
        if os.environ.get("RANK", "0") == "0":
            progress.say(text)

    def error(self, message: str, span: dg.Span | None, code: str = "run-failed",
              help: str | None = None) -> None:
        if span is not None and span.file.endswith(".py"):  # a component file's line
            with suppress(OSError):
                self.sources.add(span.file, Path(span.file).read_text(errors="replace"))
        d = dg.Diagnostic(code=code, message=message, span=span or dg.NO_SPAN, help=help)
        sys.stderr.write(dg.render(d, self.sources) + "\n")

    # ------------------------------------------------------------ one run
    def spans(self, exp: ir.Experiment) -> dict[str, dg.Span]:
        out: dict[str, dg.Span] = {"train": exp.span}
        for key in ("model", "data", "objective", "metrics", "policy"):
            f = next((f for f in exp.fields if f.path == key), None)
            if f is None:
                continue
            out[key] = f.span
            if isinstance(f.value, ir.Ref):
                d = exp.decl(f.value.name)
                if d is not None:
                    out[key] = d.span
        train = [f for f in exp.fields if f.path.startswith("train.") and f.origin.how != "default"]
        if train:
            out["train"] = train[0].span
        return out

    def run_one(self, exp: ir.Experiment, run: Run, wait: bool = True) -> int:
        """Run one run under its directory's lock. ``wait=False``: when another process holds
        the lock (it is training this run), return ``BUSY`` at once instead of waiting."""
        if "WORLD_SIZE" in os.environ:  # a torchrun rank: the launching process holds the lock
            return self._run_one(exp, run)
        if self.opts.rdzv and int(run.config["train"].get("nodes") or 1) > 1:
            # every node launches this run together: the rendezvous, not the lock, joins them
            return self._run_one(exp, run)
        path = run_dir(self.root, exp.name, run.hash)
        with run_lock(path, wait=wait) as held:
            if not held:
                return BUSY
            return self._run_one(exp, run)

    def _run_one(self, exp: ir.Experiment, run: Run) -> int:
        from specc.backend import choose, load_backend

        path = run_dir(self.root, exp.name, run.hash)
        manifest = read_manifest(path)
        if manifest and manifest.get("status") == "finished" and not self.opts.force:
            self.say(f"  {run.name} ({run.hash}): finished before; skipped (--force reruns it)")
            return EXIT_OK
        if manifest and self.opts.force and os.environ.get("RANK", "0") == "0":
            # Emptied, not deleted: the lock this process holds lives in it, so a second
            # `specc run` still waits (and a symlinked run directory is emptied, not unlinked).
            try:
                remove_entries(path, keep={LOCK_NAME})
            except OSError as exc:
                self.error(f"--force could not clear {path}: {exc}", exp.span,
                           code="io-error", help="remove the directory by hand")
                return EXIT_FAILED
            manifest = None
        backend_name = choose(self.opts.backend or run.config.get("backend") or "auto")
        backend = load_backend(backend_name)
        if not backend.available():
            self.error(f"the {backend_name} backend is not available on this machine",
                       exp.span, code="backend-unavailable",
                       help=getattr(backend, "unavailable_help",
                                    "use --backend cpu, or run where a GPU is visible"))
            return EXIT_FAILED
        devices = int(run.config["train"].get("devices") or 1)
        nodes = int(run.config["train"].get("nodes") or 1)
        one_process = backend.capabilities.single_process_devices  # SPMD: no torchrun
        if (devices > 1 or nodes > 1) and not one_process and "WORLD_SIZE" not in os.environ:
            return self.launch_distributed(exp, run, devices, nodes)
        return self.train(exp, run, path, manifest, backend)

    def launch_distributed(self, exp: ir.Experiment, run: Run, devices: int,
                           nodes: int = 1) -> int:
        """Re-launch this run under torchrun with one process per device: on this machine, or
        as one node of ``nodes`` meeting at the c10d rendezvous ``--rdzv HOST:PORT`` (every
        node runs the same `specc run`; the run's hash is the rendezvous id)."""
        if nodes == 1:
            where = ["--standalone"]
        elif not self.opts.rdzv:
            self.error(f"{run.name} spans {nodes} nodes: run `specc run {self.spec} --rdzv "
                       "HOST:PORT` on each of them, HOST being the first node's address",
                       exp.span, code="run-failed", help="or set $SPECC_RDZV")
            return EXIT_FAILED
        else:
            where = [f"--nnodes={nodes}", "--rdzv-backend=c10d",
                     f"--rdzv-endpoint={self.opts.rdzv}", f"--rdzv-id={run.hash}"]
        cmd = [sys.executable, "-m", "specc.runtime.torchrun", *where,
               f"--nproc_per_node={devices}", "-m", "specc.cli.main", "run", str(self.spec),
               "--experiment", exp.name, "--root", str(self.root), "--quiet"]
        if self.opts.profile:
            cmd += ["--profile", self.opts.profile]
        if self.opts.backend:
            cmd += ["--backend", self.opts.backend]
        for tracker in self.opts.trackers:
            cmd += ["--tracker", tracker]
        self.say(f"  {run.name} ({run.hash}): {devices} processes under torchrun"
                 + (f", one node of {nodes} (rendezvous {self.opts.rdzv})" if nodes > 1 else ""))
        env = dict(os.environ, SPECC_ONLY_RUN=run.hash, OMP_NUM_THREADS="1")
        from specc.runtime.control import Interrupt

        # A signal reaches the ranks (the terminal's or the cluster's process group); this
        # process waits for them to save their checkpoint instead of dying first.
        with Interrupt():
            return subprocess.run(cmd, env=env).returncode

    def train(self, exp: ir.Experiment, run: Run, path: Path, manifest: dict[str, Any] | None,
              backend: Any) -> int:
        """Train one run on ``backend``: the manifest says `running`, then how it ended."""
        from specc.runtime.loop import Trainer

        only = os.environ.get("SPECC_ONLY_RUN")
        if only and only != run.hash:
            return EXIT_OK
        runtime = backend.runtime(run.config["train"])
        runtime.setup_distributed()
        if (int(run.config["train"].get("nodes") or 1) > 1 and runtime.world > 1
                and not _store_is_shared(path, runtime.device)):
            self.error(f"the store {self.root} is not shared between the nodes of {run.name}: "
                       "a rank does not see the file rank 0 wrote there, so they could not "
                       "resume from one checkpoint", exp.span, code="run-failed",
                       help="give every node the same --store on a filesystem they all see")
            runtime.close()
            return EXIT_FAILED
        is_main = runtime.is_main
        manifest = self._manifest(exp, run, backend.name, runtime,
                                  (manifest or {}).get("started") or now())
        if is_main:
            write_manifest(path, manifest)
        trainer = Trainer(run.config, path, runtime, spans=self.spans(exp),
                          base_dir=self.spec.parent, store_root=self.root,
                          progress=("none" if self.quiet else
                                    "bar" if sys.stderr.isatty() else "lines"),
                          on_eval=self._on_eval, allow_python=self.opts.python)
        tracking = self._tracking(exp, run, path) if is_main else None
        if tracking is not None:
            trainer.log.listeners.append(tracking.log)
        t0 = time.time()
        try:
            status, reason, code, last = self._train(exp, run, trainer, runtime)
        finally:
            runtime.barrier()
        if is_main:
            manifest.update(status=status, reason=reason, finished=now(),
                            step=getattr(trainer, "step", 0),
                            tokens=getattr(trainer, "tokens", 0),
                            seconds=round(time.time() - t0, 2),
                            params={"trainable": getattr(trainer, "counts", (0, 0))[0],
                                    "total": getattr(trainer, "counts", (0, 0))[1]},
                            at_run=_at_run(trainer, runtime))
            try:
                write_manifest(path, manifest)
                index.record(self.root, manifest, path, last)
            except DiskFull as exc:
                status, reason, code = "failed", str(exc), EXIT_FAILED
                self.error(reason, None, code="disk-full")
            if tracking is not None:
                tracking.finish(status)
            if status == "finished":
                self.say(f"  finished in {time.time() - t0:.1f} s: {_row_text(last)}")
                self.say(f"  results in {path}")
        runtime.close()
        self.last_status, self.last_reason = status, reason
        self.last_row = last or (trainer.log.rows()[-1:] or [{}])[0] if is_main else last
        return code

    def _tracking(self, exp: ir.Experiment, run: Run, path: Path) -> Any:
        """The run's trackers (the spec's and `--tracker`'s), started; None without any. A
        tracker whose library is missing stops here with the install line (exit 1)."""
        from specc.api import BuildContext
        from specc.components.trackers import RunInfo, Tracking
        from specc.runtime import plugins

        cfgs = list(run.config.get("trackers") or [])
        named = {c.get("component") for c in cfgs}
        cfgs += [{"component": t} for t in self.opts.trackers if t not in named]
        if not cfgs:
            return None
        ctx = BuildContext(seed=int(run.config.get("seed", 0)), base=self.spec.parent,
                           run_dir=path, store=self.root)
        built = [(str(c["component"]), plugins.build(c, ctx, allow_python=self.opts.python))
                 for c in cfgs]
        tracking = Tracking(built, RunInfo(
            experiment=exp.name, name=run.name, hash=run.hash, config=run.config,
            bindings=run.bindings, path=path, store=self.root, group=exp.name))
        tracking.start()
        return tracking

    def _manifest(self, exp: ir.Experiment, run: Run, backend: str, runtime: Any,
                  started: str) -> dict[str, Any]:
        return {
            "experiment": exp.name, "name": run.name, "hash": run.hash,
            "spec": {"path": str(self.spec), "hash": self.spec_hash},
            "plan_hash": self.plan_hash,
            "bindings": run.bindings, "config": run.config, "seed": run.config.get("seed", 0),
            "backend": backend, "device": runtime.describe(), "world_size": runtime.world,
            "versions": versions(), "git_commit": git_commit(self.spec.parent),
            "status": "running", "started": started, "reason": None, "pid": os.getpid(),
        }

    def _train(self, exp: ir.Experiment, run: Run, trainer: Any,
               runtime: Any) -> tuple[str, str | None, int, dict[str, Any]]:
        """(status, reason, exit code, last row): every way a run ends, each failure reported
        at the spec line that caused it."""
        from specc.runtime.loop import Interrupt, RunStopped, StageError

        try:
            with Interrupt() as interrupt:
                trainer.build()
                resumed = trainer.resume()
                what = (f"{trainer.total} steps, {trainer.counts[0]:,} of "
                        f"{trainer.counts[1]:,} parameters trained" if trainer.total
                        else f"evaluation only, {trainer.counts[1]:,} parameters")
                self.say(f"  {run.name} ({run.hash}) on {runtime.describe()}: {what}"
                         + (f"; resumed at step {trainer.step}" if resumed else ""))
                if trainer.accumulate > 1 and "fit_batch" in trainer.at_run:
                    self.say(f"  fit_batch: {trainer.at_run['fit_batch']}")
                last = trainer.run(interrupt)
                trainer.save_final()
            return "finished", None, EXIT_OK, last
        except StageError as exc:
            if exc.code:
                self.error(str(exc), exc.span, code=exc.code)
            else:
                self.error(str(exc), exc.span)
            return "failed", str(exc), EXIT_FAILED, {}
        except RunStopped as exc:
            code = {"interrupted": EXIT_INTERRUPTED, "pruned": EXIT_OK}.get(exc.status,
                                                                          EXIT_FAILED)
            if exc.status != "pruned" and (runtime.is_main or exc.status != "interrupted"):
                self.error(exc.reason, exp.span if exc.status == "failed" else None,
                           code="run-" + exc.status)
            return exc.status, exc.reason, code, {}
        except DiskFull as exc:
            self.error(str(exc), None, code="disk-full")
            return "failed", str(exc), EXIT_FAILED, {}
        except KeyboardInterrupt:
            return "interrupted", "interrupted twice: stopped at once", EXIT_INTERRUPTED, {}
        except runtime.oom_types() as exc:
            reason = (f"out of memory at step {getattr(trainer, 'step', 0)} with batch "
                      f"{run.config['train']['batch']} ({str(exc).splitlines()[0]})")
            self.error(reason, self.spans(exp).get("train"),
                       help="lower train.batch and raise train.accumulate (same global batch)")
            return "failed", reason, EXIT_FAILED, {}
        except Exception as exc:
            from specc.runtime.plugins import user_failure

            found = user_failure(exc)
            if found is None:
                raise
            reason, span = found
            self.error(reason, span, code="component-error")
            return "failed", reason.splitlines()[0], EXIT_FAILED, {}

    def _on_eval(self, row: dict[str, Any]) -> None:
        self.say("    " + _row_text(row))
        if self.eval_hook is not None:
            self.eval_hook(row)


@contextmanager
def run_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """One process at a time trains a run directory; the next one finds it finished. Yields
    whether the lock is held (always, when ``wait``). The operating system releases the lock of
    a process that dies, so a run claimed by a dead process is taken over."""
    import fcntl

    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_NAME).open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _row_text(row: dict[str, Any]) -> str:
    parts = [f"step {row.get('step', 0)}"]
    for k, v in row.items():
        if k in ("step", "tokens", "time", "lr"):
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


def _at_run(trainer: Any, runtime: Any) -> dict[str, Any]:
    """The run's own decisions (Note [Rewrites]) and, where the device measures it, its peak
    memory beside the memory model's estimate (Note [Memory model])."""
    out = dict(getattr(trainer, "at_run", {}))
    compiles = getattr(runtime, "compiles", None)
    if compiles is not None:
        out["compile"] = "compiled" if compiles else "eager"
    peak = next(iter(runtime.memory()), None)
    if peak is not None:
        out.setdefault("memory", {})["peak_gib"] = round(peak / 1024, 4)
    return out


def _store_is_shared(path: Path, device: Any) -> bool:
    """Every rank of a multi-node run sees the run directory rank 0 writes to: rank 0 writes a
    random token there, every rank reads it back, and all agree on the count of those that
    saw it (a collective, so every rank gives the same answer)."""
    import secrets

    import torch
    import torch.distributed as dist

    token = torch.zeros(1, dtype=torch.int64, device=device)  # NCCL wants device tensors
    probe = path / ".shared-store"
    if dist.get_rank() == 0:
        token[0] = secrets.randbits(62)
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text(str(int(token[0])))
    dist.broadcast(token, src=0)
    try:
        seen = probe.read_text().strip() == str(int(token[0]))
    except OSError:
        seen = False
    count = torch.tensor([int(seen)], dtype=torch.int64, device=device)
    dist.all_reduce(count)
    dist.barrier()
    if dist.get_rank() == 0:
        probe.unlink(missing_ok=True)
    return int(count[0]) == dist.get_world_size()
