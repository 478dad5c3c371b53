"""``specc report``: a table of runs and an HTML page with their loss and metric curves."""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.store.runs import MetricsLog, read_manifest

_SKIP = {"step", "tokens", "time", "lr"}


def planned(spec: Path, profile: str | None = None) -> dict[str, set[str] | None]:
    """Per experiment of a spec, the run hashes of its current plan (None: a search or a CBS
    sweep, whose runs are made as it goes); stale runs of older definitions are left out."""
    from specc.compiler.pipeline import compile_file

    result = compile_file(spec, profile=profile)
    out: dict[str, set[str] | None] = {}
    for ep in result.plan.experiments if result.plan else ():
        exp = ep.experiment
        dynamic = exp.search is not None or (exp.sweep is not None and exp.sweep.kind == "cbs")
        out[exp.name] = None if dynamic else {r.hash for r in ep.runs()}
    return out


def _sweep_sections(target: str, root: Path, out: Path,
                    plan: dict[str, set[str] | None]) -> list[tuple[str, list[str]]]:
    """Per experiment of a spec: the seed-aggregated grid, the search, or the CBS results."""
    p = Path(target)
    if p.suffix != ".exp" or not p.exists():
        return []
    from specc.compiler.pipeline import compile_file
    from specc.report import sweeps

    result = compile_file(p, stop_after="check")
    sections = []
    for exp in result.program.experiments if result.program else ():
        hashes = plan.get(exp.name)
        if exp.search is not None:
            sections.append(sweeps.search_report(exp, str(p), root, out))
        elif exp.sweep is not None and exp.sweep.kind == "cbs":
            sections.append(sweeps.cbs_report(exp, root, out))
        elif exp.sweep is not None:
            rows = sweeps.aggregate_grid(exp, root, hashes)
            (out / f"{exp.name}_grid.json").write_text(json.dumps(rows, indent=2))
            sections.append((f"grid {exp.name} (final metrics over seeds):\n"
                             + sweeps.grid_text(rows), []))
        if exp.field("circuit") is not None and not (
                isinstance(exp.field("circuit"), ir.Const)):
            sections.append(sweeps.circuit_report(exp, root, out, hashes))
    cbs = [e for e in (result.program.experiments if result.program else ())
           if e.sweep is not None and e.sweep.kind == "cbs"]
    scaling = sweeps.cbs_scaling(cbs, root, out)
    if scaling[0]:
        sections.append(scaling)
    return sections


def find_runs(target: str, root: Path,
              plan: dict[str, set[str] | None] | None = None) -> list[Path] | None:
    """Runs named by a hash (or prefix), a run directory, or a spec (its experiments' runs in
    the current plan, or all of them when ``plan`` is None)."""
    p = Path(target)
    if p.is_dir() and (p / "manifest.json").exists():
        return [p]
    if p.suffix == ".exp" and p.exists():
        from specc.compiler.pipeline import compile_file

        result = compile_file(p, stop_after="check")
        names = [e.name for e in result.program.experiments] if result.program else []
        found = []
        for n in names:
            keep = plan.get(n) if plan is not None else None
            found += [d for d in sorted((root / n).glob("*"))
                      if (d / "manifest.json").exists() and (keep is None or d.name in keep)]
        return found or ([p] if names else None)
    found = [d for d in root.glob("*/*") if d.name.startswith(target)
             and (d / "manifest.json").exists()]
    return found or None


def report_cmd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    is_spec = Path(args.target).suffix == ".exp" and Path(args.target).exists()
    plan = planned(Path(args.target), getattr(args, "profile", None)) if is_spec else {}
    runs = find_runs(args.target, root, None if getattr(args, "all", False) else plan)
    if is_spec and not [r for r in runs or [] if r.is_dir()]:
        stored = [r for r in find_runs(args.target, root) or [] if r.is_dir()]
        if stored:
            how = f"profile {args.profile}" if getattr(args, "profile", None) else "no profile"
            print(f"note: no run of the spec's current plan ({how}) is stored, but {len(stored)} "
                  "run(s) of other definitions or profiles are: give --profile NAME, or --all")
    runs = [r for r in runs or [] if r.is_dir()] if runs != [Path(args.target)] else []
    if runs is None or (not runs and Path(args.target).suffix != ".exp"):
        print(f"specc: error: no run matches {args.target!r} under {root} "
              "(give a run hash or prefix, a run directory, or a spec)")
        return 2
    out = Path(args.out) if args.out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    if getattr(args, "all", False):
        plan = {}
    sections = _sweep_sections(args.target, root, out, plan)
    for text, _ in sections:
        print(text + "\n")
    rows = [_summary(r) for r in runs]
    print(_table(rows))
    page = _html(rows, out, sections)
    (out / "index.html").write_text(page)
    (out / "runs.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"\nreport written to {out / 'index.html'}")
    return 0


def _summary(run: Path) -> dict[str, Any]:
    m = read_manifest(run) or {}
    rows = MetricsLog(run / "metrics.jsonl").rows()
    return {"hash": m.get("hash", run.name), "name": m.get("name", run.name),
            "experiment": m.get("experiment"), "status": m.get("status"),
            "reason": m.get("reason"), "step": m.get("step"), "path": str(run),
            "final": rows[-1] if rows else {}, "rows": rows,
            "params": m.get("params", {}), "device": m.get("device")}


def _table(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["final"] if k not in _SKIP and k not in keys]
    head = ["run", "hash", "status", "step", *keys]
    lines = [head]
    for r in rows:
        vals = [f"{r['final'][k]:.4g}" if isinstance(r["final"].get(k), float)
                else str(r["final"].get(k, "")) for k in keys]
        lines.append([r["name"], r["hash"], str(r["status"]), str(r["step"]), *vals])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def _plot(row: dict[str, Any], out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = row["rows"]
    if not data:
        return None
    keys = [k for k in data[-1] if k not in _SKIP and isinstance(data[-1][k], (int, float))
            and not k.endswith("_params")]
    losses = [k for k in keys if "loss" in k or "perplexity" in k]
    others = [k for k in keys if k not in losses]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6, 4),
                             squeeze=False)
    steps = [d["step"] for d in data]
    for k in losses:
        axes[0][0].plot(steps, [d.get(k) for d in data], marker="o", label=k)
    axes[0][0].set_xlabel("step")
    axes[0][0].set_title("loss")
    axes[0][0].legend()
    if others:
        for k in others:
            axes[0][1].plot(steps, [d.get(k) for d in data], marker="o", label=k)
        axes[0][1].set_xlabel("step")
        axes[0][1].set_title("metrics")
        axes[0][1].legend()
    fig.suptitle(row["name"])
    fig.tight_layout()
    name = f"{row['hash']}_curves.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _html(rows: list[dict[str, Any]], out: Path,
          sections: list[tuple[str, list[str]]] | None = None) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>specc report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f4f4f4}</style></head><body><h1>specc report</h1>"]
    for text, images in sections or []:
        parts.append("<pre>" + html.escape(text) + "</pre>")
        parts.extend(f"<img src='{img}' alt='{html.escape(img)}'>" for img in images)
    parts.append("<pre>" + html.escape(_table(rows)) + "</pre>")
    for r in rows:
        parts.append(f"<h2>{html.escape(r['name'])} <small>{r['hash']}</small></h2>")
        parts.append(f"<p>status {html.escape(str(r['status']))}"
                     + (f": {html.escape(str(r['reason']))}" if r["reason"] else "")
                     + f"; device {html.escape(str(r['device']))}; "
                     f"trainable {r['params'].get('trainable', '?')} of "
                     f"{r['params'].get('total', '?')} parameters</p>")
        img = _plot(r, out)
        if img:
            parts.append(f"<img src='{img}' alt='curves of {html.escape(r['name'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
