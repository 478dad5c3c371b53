"""One run's directory: manifest.json, metrics.jsonl, checkpoints/ and final/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from specc.store.files import DiskFull, is_disk_full


def run_dir(root: Path, experiment: str, run_hash: str) -> Path:
    return root / experiment / run_hash


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Atomic write: a crash never leaves a half-written manifest."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "manifest.json.tmp"
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    try:
        tmp.write_text(text)
        os.replace(tmp, path / "manifest.json")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFull(path / "manifest.json", len(text)) from exc
        raise


def finished_runs(root: Path, experiment: str) -> list[Path]:
    base = root / experiment
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir()):
        m = read_manifest(d)
        if m is not None and m.get("status") == "finished" and (d / "final").is_dir():
            out.append(d)
    return out


def versions() -> dict[str, str]:
    from specc import __version__

    out = {"python": platform.python_version(), "specc": __version__}
    for mod in ("torch", "transformers", "peft"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = "absent"
    return out


def git_commit(cwd: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class MetricsLog:
    """metrics.jsonl: one object per row; on resume, rows after the checkpoint are cut.

    Note [Metrics rows]: two kinds of rows share the file, in step order. An evaluation row
    (no ``kind``) holds the step, the tokens or items seen, the time, the learning rate, the
    training loss since the last log and every metric. A training row (``"kind": "train"``),
    written every ``train.log_every`` steps, is the learning curve: the training loss, the
    learning rate, tokens (items) seen and per second, and the gradient norm before clipping.
    ``rows()`` gives the evaluation rows (what reports, sweeps and analysis compare),
    ``rows("train")`` the training rows, ``rows(None)`` all of them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listeners: list[Any] = []  # called with each row appended (trackers)

    def rows(self, kind: str | None = "eval") -> list[dict[str, Any]]:
        if kind is None:
            return self._all()
        return [r for r in self._all() if r.get("kind", "eval") == kind]

    def _all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break  # a torn last line from a kill -9: everything after it is dropped
            if not isinstance(row, dict):
                break
            rows.append(row)
        return rows

    def truncate_after(self, step: int) -> None:
        """Keep rows up to ``step`` (what the checkpoint being resumed has seen)."""
        keep = [r for r in self.rows(None) if int(r.get("step", 0)) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        """One row, flushed to disk; a full disk cuts the file back to its last whole row and
        raises ``DiskFull``."""
        line = json.dumps(row, sort_keys=True) + "\n"
        with self.path.open("a") as f:
            size = f.tell()
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                f.truncate(size)
                raise DiskFull(self.path, len(line.encode())) from exc
        for listener in self.listeners:
            listener(row)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
