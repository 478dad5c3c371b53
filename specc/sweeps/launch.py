"""Starting trials: a fork server that has imported torch once, each trial a fresh child.

Note [Trial start]: a trial used to be a fresh interpreter that imported torch and transformers
and recompiled the spec (about 5 s before its first step). Now the worker starts a fork server
once (multiprocessing's ``forkserver`` with torch, transformers, peft and specc's runtime
preloaded) and each trial is a child forked from it: a separate process, so a crash, an
out-of-memory kill or a NaN still ends only that trial, but one that starts in milliseconds.
The child writes everything it prints to the trial's log file (never a pipe that can fill up)
and exits with the trial's status; a signal shows as a negative status, as with a subprocess.

``SPECC_TRIAL_START=subprocess`` starts each trial as ``python -m specc.sweeps.trial`` instead
(the baseline ``benchmarks/bench_sweep_overhead.py`` compares against).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# What the fork server imports once, before it forks any trial.
PRELOAD = ("torch", "transformers", "peft", "optuna", "specc.sweeps.trial",
           "specc.runtime.execute", "specc.runtime.loop", "specc.components.models",
           "specc.components.data", "specc.components.policies", "specc.components.metrics")

_CONTEXT: Any = None


def die_with_parent() -> None:
    """Linux: the trial is killed when its worker dies, so no orphan keeps training."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def mode() -> str:
    chosen = os.environ.get("SPECC_TRIAL_START", "forkserver")
    return chosen if chosen in ("forkserver", "subprocess") else "forkserver"


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        _CONTEXT = ctx
    return _CONTEXT


def _child(target: str, log_path: str, args: tuple[Any, ...]) -> None:
    """In the forked child: output to the log, then the target; its return is the status."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own
    die_with_parent()
    code = 70
    try:
        module, name = target.rsplit(".", 1)
        fn = getattr(__import__(module, fromlist=[name]), name)
        code = int(fn(*args) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - printed to the trial's log; the worker classifies it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class TrialProcess:
    """A started trial: ``poll()`` is None while it runs, then its status (negative: the
    signal that ended it), like ``subprocess.Popen``."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        if isinstance(self.proc, subprocess.Popen):
            return self.proc.poll()
        return self.proc.exitcode  # type: ignore[no-any-return]

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def kill(self) -> None:
        self.proc.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        if isinstance(self.proc, subprocess.Popen):
            return self.proc.wait(timeout)
        self.proc.join(timeout)
        return self.proc.exitcode  # type: ignore[no-any-return]


def start(target: str, args: tuple[str, ...], log_path: Path) -> TrialProcess:
    """Start ``target`` (``module.function``, returning an exit status) on ``args`` in a fresh
    child whose output goes to ``log_path``."""
    if mode() == "subprocess":
        module = target.rsplit(".", 1)[0]
        with log_path.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        return TrialProcess(proc)
    process = _context().Process(target=_child, args=(target, str(log_path), args),
                                 daemon=False)
    process.start()
    return TrialProcess(process)
