"""The SQLite index of every run under a store root, and ``specc runs``."""

from __future__ import annotations

import argparse
import json
import sqlite3
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
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / "index.sqlite", timeout=30)
    con.execute(_SCHEMA)
    return con


def record(root: Path, manifest: dict[str, Any], path: Path, final: dict[str, Any]) -> None:
    with connect(root) as con:
        con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (manifest["hash"], manifest["experiment"], manifest.get("name"),
             manifest.get("spec", {}).get("path"), manifest.get("status"),
             manifest.get("reason"), manifest.get("started"), manifest.get("finished"),
             manifest.get("step"), manifest.get("backend"), manifest.get("device"),
             json.dumps(final, sort_keys=True), str(path)))


def rebuild(root: Path) -> None:
    """Re-index from the run directories (the directories are the source of truth)."""
    from specc.store.runs import MetricsLog

    for manifest_path in sorted(root.glob("*/*/manifest.json")):
        m = read_manifest(manifest_path.parent)
        if m is None or "hash" not in m:
            continue
        rows = MetricsLog(manifest_path.parent / "metrics.jsonl").rows()
        record(root, m, manifest_path.parent, rows[-1] if rows else {})


def list_runs(root: Path) -> list[dict[str, Any]]:
    if not root.exists():
        return []
    rebuild(root)
    with connect(root) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM runs ORDER BY started").fetchall()
    out = []
    for r in rows:
        d = dict(r)
        d["final"] = json.loads(d["final"] or "{}")
        out.append(d)
    return out


def list_runs_cmd(args: argparse.Namespace) -> int:
    rows = list_runs(Path(args.root))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs under {args.root}")
        return 0
    print(f"{'hash':<17} {'experiment':<16} {'status':<12} {'step':>6}  final metrics")
    for r in rows:
        final = {k: v for k, v in r["final"].items() if k not in ("step", "tokens", "time")}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(final.items())[:4])
        print(f"{r['hash']:<17} {r['experiment']:<16} {r['status']:<12} {r['step'] or 0:>6}  "
              f"{shown}")
    return 0
