"""What a run prints while it trains: a tqdm bar on a terminal; elsewhere (nohup, a SLURM log, a
pipe) a timestamped line at a steady rate, since a bar's carriage returns make no log. Lines
printed during training (evaluations) go through ``say``, which writes above a live bar (tqdm's
own writer) instead of leaving frozen copies of it behind."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LINE_EVERY = 15.0  # seconds between two progress lines when stderr is not a terminal
_live: list[Any] = []  # the bar being drawn, if any
_stream: list[Any] = []  # where lines go: stdout, or stderr under `specc run --json`


@contextmanager
def to_stderr(on: bool = True) -> Iterator[None]:
    """`--json`: stdout carries the JSON alone; what a run says goes to stderr meanwhile."""
    before = list(_stream)
    if on:
        _stream[:] = [sys.stderr]
    try:
        yield
    finally:
        _stream[:] = before


def say(text: str) -> None:
    stream = _stream[0] if _stream else sys.stdout
    if _live:
        from tqdm import tqdm

        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


class Progress:
    """``mode``: ``bar`` (a terminal), ``lines`` (anything else) or ``none`` (``--quiet``)."""

    def __init__(self, mode: str, total: int, initial: int, unit: str) -> None:
        self.mode, self.total, self.unit = mode, total, unit
        self.bar = None
        self.last_line = 0.0
        self.started = time.time()
        self.first_step = initial
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            leave=True)
            _live.append(self.bar)

    def update(self, step: int, loss: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(f"loss {loss:.4f}, {rate:,.0f} {self.unit}/s",
                                     refresh=False)
            self.bar.refresh()
        elif self.mode == "lines":
            now = time.time()
            if now - self.last_line < LINE_EVERY and step < self.total:
                return
            self.last_line = now
            done = step - self.first_step
            eta = ""
            if done > 0 and self.total > step:
                eta = f", eta {_duration((now - self.started) / done * (self.total - step))}"
            share = f" ({100 * step / self.total:.0f}%)" if self.total else ""
            say(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  step {step}/{self.total}{share}, "
                f"train_loss {loss:.4f}, {rate:,.0f} {self.unit}/s{eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            _live.remove(self.bar)
            self.bar = None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
