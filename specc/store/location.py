"""Note [Store location]: where a project's results live, found the same way from anywhere.

In order: ``--root`` (alias ``--store``) when given; ``$SPECC_STORE``; else ``runs/`` in the
project of the spec, the nearest folder above the spec holding ``.git``, ``pyproject.toml`` or
``specc.toml`` (the spec's own folder when there is none). A command without a spec (``specc
runs``, ``specc report HASH``) looks for the project from the current directory. So ``specc
run specs/x.exp`` from the project root and ``specc run ../specs/x.exp`` from a subfolder use
one store, and a run is never trained twice because of where a shell happened to be."""

from __future__ import annotations

import os
from pathlib import Path

MARKERS = (".git", "pyproject.toml", "specc.toml")


def project_of(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in MARKERS):
            return folder
    return None


def store_root(given: str | None, spec: str | Path | None = None) -> Path:
    if given:
        return Path(given)
    env = os.environ.get("SPECC_STORE")
    if env:
        return Path(env)
    start = Path(spec).resolve().parent if spec is not None else Path.cwd()
    project = project_of(start)
    return (project if project is not None else start) / "runs"
