"""How a run's stages fail and stop: failures attributed to the spec line that caused them
(``StageError``, ``stage``), the ways a run stops early (``RunStopped``), and Ctrl-C / SIGTERM
asking for a checkpoint first (``Interrupt``)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from specc.diagnostics import Span, SpeccError


class StageError(Exception):
    """A failure attributed to the spec construct that caused it."""

    def __init__(self, message: str, span: Span | None, code: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.code = code


class RunStopped(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@contextmanager
def stage(what: str, span: Span | None) -> Iterator[None]:
    """Re-attribute a user-facing failure inside a stage to the spec line that asked for it."""
    try:
        yield
    except SpeccError as exc:
        raise StageError(f"{what}: {exc}", span) from exc
    except FileNotFoundError as exc:
        raise StageError(f"{what}: file not found: {exc.filename}", span) from exc


class Interrupt:
    """Ctrl-C, SIGTERM (how clusters preempt) or SIGUSR1 (SLURM's `--signal=USR1@90` warning
    before a time limit) asks the loop to stop after saving a checkpoint, exiting 130 so a job
    script can requeue it; a second one stops at once. SIGUSR2 (submitit's preemption and
    time-limit signal) does the same; under `specc launch` the task is then requeued. The same
    signal again within ``REPEAT_S`` seconds is not a second one: under torchrun a rank gets a
    cluster's signal both from the cluster and forwarded by torchrun's agent."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    REPEAT_S = 3.0

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None
        self._at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.requested:
                if name == self.signal and time.monotonic() - self._at < self.REPEAT_S:
                    return
                raise KeyboardInterrupt
            self.requested = True
            self.signal, self._at = name, time.monotonic()

        if threading.current_thread() is threading.main_thread():  # signals: main only
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
