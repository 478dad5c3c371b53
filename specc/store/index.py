"""The SQLite index of every run under a store root, and ``specc runs``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from specc.store.runs import read_manifest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  hash TEXT NOT NULL, experiment TEXT NOT NULL, name TEXT, spec TEXT, status TEXT,
  reason TEXT, started TEXT, finished TEXT, step INTEGER, backend TEXT, device TEXT,
  final TEXT, path TEXT, PRIMARY KEY (experiment, hash)
)
"""


def connect(root: Path) -> sqlite3.Connection:
    """The index, rebuilt from the manifests when its file is damaged (it is only a cache)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "index.sqlite"
    try:
        return _open(path)
    except sqlite3.DatabaseError as exc:
        _warn(f"the run index {path} is damaged ({exc}); rebuilding it from the run "
              "directories")
        for extra in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        con = _open(path)
        _reindex(root, con)
        return con


def _open(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute(_SCHEMA)
        con.execute("SELECT count(*) FROM runs").fetchone()
    except sqlite3.DatabaseError:
        con.close()
        raise
    return con


def _warn(text: str) -> None:
    sys.stderr.write(f"warning: {text}\n")


def _row(manifest: dict[str, Any], path: Path, final: dict[str, Any]) -> tuple[Any, ...]:
    """The index row of a manifest; ``ValueError`` when it lacks what a row needs."""
    def text(key: str) -> str | None:
        v = manifest.get(key)
        return None if v is None else str(v)

    if not isinstance(manifest.get("hash"), str) or not isinstance(manifest.get("experiment"),
                                                                   str):
        raise ValueError("no hash or experiment")
    spec = manifest.get("spec")
    step = manifest.get("step")
    return (manifest["hash"], manifest["experiment"], text("name"),
            str(spec.get("path")) if isinstance(spec, dict) else None, text("status"),
            text("reason"), text("started"), text("finished"),
            step if isinstance(step, int) else None, text("backend"), text("device"),
            json.dumps(final, sort_keys=True, default=str), str(path))


def record(root: Path, manifest: dict[str, Any], path: Path, final: dict[str, Any]) -> None:
    con = connect(root)
    try:
        with con:
            con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        _row(manifest, path, final))
    finally:
        con.close()


def rebuild(root: Path) -> None:
    """Re-index from the run directories (the directories are the source of truth); a manifest
    that cannot be read is skipped with a warning."""
    con = connect(root)
    try:
        _reindex(root, con)
    finally:
        con.close()


def _reindex(root: Path, con: sqlite3.Connection) -> None:
    from specc.store.runs import MetricsLog

    rows = []
    for manifest_path in sorted(root.glob("*/*/manifest.json")):
        run = manifest_path.parent
        m = read_manifest(run)
        try:
            if m is None:
                raise ValueError("not a JSON object")
            metrics = MetricsLog(run / "metrics.jsonl").rows()
            rows.append(_row(m, run, metrics[-1] if metrics else {}))
        except (ValueError, OSError) as exc:
            _warn(f"skipping {manifest_path}: it cannot be read ({exc})")
    with con:
        con.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def list_runs(root: Path) -> list[dict[str, Any]]:
    if not root.exists():
        return []
    rebuild(root)
    con = connect(root)
    try:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM runs ORDER BY started").fetchall()
    finally:
        con.close()
    out = []
    for r in rows:
        d = dict(r)
        d["final"] = json.loads(d["final"] or "{}")
        out.append(d)
    return out


def list_runs_cmd(args: argparse.Namespace) -> int:
    from specc.store.location import store_root

    root = store_root(args.root)
    rows = list_runs(root)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    print(f"{'hash':<17} {'experiment':<16} {'status':<12} {'step':>6}  final metrics")
    for r in rows:
        final = {k: v for k, v in r["final"].items() if k not in ("step", "tokens", "time")}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(final.items())[:4])
        print(f"{r['hash']:<17} {r['experiment']:<16} {r['status'] or '?':<12} "
              f"{r['step'] or 0:>6}  "
              f"{shown}")
    return 0
