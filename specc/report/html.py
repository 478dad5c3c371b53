"""``specc report``: a table of runs and an HTML page with their loss and metric curves."""

from __future__ import annotations

import argparse
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.diagnostics import SpeccError
from specc.store.runs import MetricsLog, read_manifest

_SKIP = {"step", "tokens", "time", "lr"}


def _spec(spec: Path, profile: str | None) -> tuple[Any, dict[str, set[str] | None]]:
    """A spec compiled once: its experiments, and per experiment the run hashes of its current
    plan (None: a search or a CBS sweep, whose runs are made as it goes)."""
    from specc.compiler.pipeline import compile_file

    result = compile_file(spec, profile=profile)
    plan: dict[str, set[str] | None] = {}
    for ep in result.plan.experiments if result.plan else ():
        exp = ep.experiment
        dynamic = exp.search is not None or (exp.sweep is not None and exp.sweep.kind == "cbs")
        plan[exp.name] = None if dynamic else {r.hash for r in ep.runs()}
    return result, plan


def _spec_runs(root: Path, plan: dict[str, set[str] | None], every: bool) -> list[Path]:
    """The stored runs of the spec's experiments: those of its current plan, or ``every`` one
    (older definitions and other profiles included)."""
    return [d for name, keep in plan.items() for d in sorted((root / name).glob("*"))
            if (d / "manifest.json").exists() and (every or keep is None or d.name in keep)]


def wanted(exp: Any) -> list[Any] | None:
    """The report components an experiment's `report = [...]` asks for (calls, in order); None
    when it is the default (then every built-in part that applies is drawn)."""
    f = next((f for f in exp.fields if f.path == "report"), None)
    if f is None or f.origin.how == "default" or not isinstance(f.value, ir.ListV):
        return None
    return [item for item in f.value.items if isinstance(item, ir.Comp)]


def _analysis_section(exp: Any, root: Path, out: Path,
                      hashes: set[str] | None) -> tuple[str, list[str]]:
    """The experiment's analysis, recomputed over whatever runs have finished, and its
    figures."""
    from specc.report.analysis import evaluate, render, runs_of
    from specc.store.runs import finished_runs

    names = sorted(hashes) if hashes is not None else [
        p.name for p in finished_runs(root, exp.name)]
    outcome = evaluate(exp.analysis, runs_of(root, exp.name, names))
    lines = [f"analysis {exp.name} over {outcome.runs} finished run"
             f"{'s' if outcome.runs != 1 else ''}:"]
    for name, value in outcome.values.items():
        if isinstance(value, dict) and not set(value) <= {"slope", "intercept", "r2", "n"}:
            shown = f"one value per run ({len(value)}; analysis.json and the grid hold them)"
        elif isinstance(value, dict):
            shown = ", ".join(f"{k} {_num(v)}" for k, v in value.items())
        else:
            shown = _num(value)
        lines.append(f"  {name} = {shown}")
    for c in outcome.checks:
        lines.append(f"  check {c.text}: {'passed' if c.passed else 'FAILED (' + c.detail + ')'}")
    images = render(outcome, out, exp.name)
    lines += [f"  figure {name}: {img}" for name, img in zip(outcome.figures, images,
                                                             strict=True)]
    return "\n".join(lines), images


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def reports(exp: Any, base: Path) -> list[Any]:
    """The report parts an experiment draws: those its `report = [...]` names (a component
    file's or a plug-in's report builders too, imported here as a run imports them), else every
    built-in part (each draws only where it applies), in the catalogue's order."""
    from specc.api import BuildContext
    from specc.catalogue.pyread import builtin_components
    from specc.components import build
    from specc.runtime import plugins

    asked = wanted(exp)
    if asked is None:
        return [build(c.name) for c in builtin_components() if c.kind == "report"]
    from specc.report.parts import Report

    parts = []
    for item in asked:
        part = plugins.build(ir.plain(item), BuildContext(base=base))
        if not isinstance(part, Report):
            msg = (f"report {item.name} returned a {type(part).__name__}; a report builder "
                   "returns specc.report.parts.Report (docs/components.md)")
            raise SpeccError(msg)
        parts.append(part)
    return parts


def _sweep_sections(spec: Path, experiments: Any, root: Path, out: Path,
                    plan: dict[str, set[str] | None]) -> list[tuple[str, list[str]]]:
    """Per experiment of a spec: its report sections (the seed-aggregated grid, the search, the
    CBS results, the circuits) and its analysis; then the sections drawn across experiments
    (``plan`` limits grids and circuits to these runs; empty: every stored run)."""
    from specc.report.parts import Drawing

    drawing = Drawing(str(spec), root, out, {e.name: plan.get(e.name) for e in experiments})
    sections = []
    across: dict[Any, list[Any]] = {}
    for exp in experiments:
        drawn: set[Any] = set()
        for part in reports(exp, spec.parent):
            if part.section is not None and part.section not in drawn:
                drawn.add(part.section)
                section = part.section(exp, drawing)
                if section is not None:
                    sections.append(section)
            if part.across is not None and exp not in across.setdefault(part.across, []):
                across[part.across].append(exp)
        if exp.analysis is not None:
            sections.append(_analysis_section(exp, root, out, plan.get(exp.name)))
    for draw, exps in across.items():
        section = draw(exps, drawing)
        if section is not None:
            sections.append(section)
    return sections


def find_runs(target: str, root: Path) -> list[Path]:
    """Runs named by a hash (or a prefix of one) or a run directory."""
    p = Path(target)
    if p.is_dir() and (p / "manifest.json").exists():
        return [p]
    return [d for d in root.glob("*/*") if d.name.startswith(target)
            and (d / "manifest.json").exists()]


def report_cmd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    spec = Path(args.target)
    every = bool(getattr(args, "all", False))
    sections: list[tuple[str, list[str]]] = []
    out = Path(args.out) if args.out else root / "report"
    curves: set[str] | None = None  # experiments whose runs get loss curves (None: all)
    table = True
    if spec.suffix == ".exp" and spec.exists():
        profile = getattr(args, "profile", None)
        result, plan = _spec(spec, profile)
        if result.plan is None:
            print(result.render())
            return 1
        runs = _spec_runs(root, plan, every)
        stored = len(_spec_runs(root, plan, True))
        if not runs and stored:
            how = f"profile {profile}" if profile else "no profile"
            print(f"note: no run of the spec's current plan ({how}) is stored, but {stored} "
                  "run(s) of other definitions or profiles are: give --profile NAME, or --all")
        out.mkdir(parents=True, exist_ok=True)
        exps = result.plan.program.experiments
        sections = _sweep_sections(spec, exps, root, out, {} if every else plan)
        pages = {e.name: {part.page for part in reports(e, spec.parent)} for e in exps}
        curves = {name for name, parts in pages.items() if "curves" in parts}
        table = any("table" in parts for parts in pages.values())
    else:
        runs = find_runs(args.target, root)
        if not runs:
            print(f"specc: error: no run matches {args.target!r} under {root} "
                  "(give a run hash or prefix, a run directory, or a spec)")
            return 2
        out.mkdir(parents=True, exist_ok=True)
    for text, _ in sections:
        print(text + "\n")
    rows = [_summary(r) for r in runs]
    if table:
        print(_table(rows))
    page = _html(rows, out, sections, curves, table)
    (out / "index.html").write_text(page)
    (out / "runs.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"\nreport written to {out / 'index.html'}")
    return 0


def _summary(run: Path) -> dict[str, Any]:
    """A run's row. The hash is the directory's name (where the run was found), never the
    manifest's word for it; every other manifest value is data, shown escaped."""
    m = read_manifest(run) or {}
    log = MetricsLog(run / "metrics.jsonl")
    rows = log.rows()
    params = m.get("params") if isinstance(m.get("params"), dict) else {}
    return {"hash": run.name, "name": str(m.get("name", run.name)),
            "experiment": m.get("experiment"), "status": m.get("status"),
            "reason": m.get("reason"), "step": m.get("step"), "path": str(run),
            "final": rows[-1] if rows else {}, "rows": rows, "train": log.rows("train"),
            "params": params, "device": m.get("device")}


def file_name(stem: str, suffix: str) -> str:
    """A file name for the report folder built from a run's or experiment's name: only
    letters, digits, '_', '.', '-', never a path.

    Example:
        >>> file_name("../../evil", "_curves.png")
        'evil_curves.png'
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip("._-") or "run"
    return cleaned[:128] + suffix


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


def _number(v: object) -> float:
    """A plotted value: a number, or NaN (a gap) for anything a damaged row holds."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


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
    steps = [_number(d.get("step")) for d in data]
    train = row.get("train") or []
    if train:  # the learning curve: every log_every steps (Note [Metrics rows])
        axes[0][0].plot([_number(d.get("step")) for d in train],
                        [_number(d.get("train_loss")) for d in train], lw=1, alpha=0.8,
                        label="train_loss (every log)")
        losses = [k for k in losses if k != "train_loss"]
    for k in losses:
        axes[0][0].plot(steps, [_number(d.get(k)) for d in data], marker="o", label=k)
    axes[0][0].set_xlabel("step")
    axes[0][0].set_title("loss")
    if axes[0][0].get_legend_handles_labels()[0]:  # an evaluation-only run has no loss curve
        axes[0][0].legend()
    if others:
        for k in others:
            axes[0][1].plot(steps, [_number(d.get(k)) for d in data], marker="o", label=k)
        axes[0][1].set_xlabel("step")
        axes[0][1].set_title("metrics")
        axes[0][1].legend()
    fig.suptitle(str(row["name"]))
    fig.tight_layout()
    name = file_name(row["hash"], "_curves.png")
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _esc(value: object) -> str:
    """Any value as HTML text: quotes escaped too, so it is safe inside attributes."""
    return html.escape(str(value), quote=True)


def _html(rows: list[dict[str, Any]], out: Path,
          sections: list[tuple[str, list[str]]] | None = None,
          curves: set[str] | None = None, table: bool = True) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>specc report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f4f4f4}</style></head><body><h1>specc report</h1>"]
    esc = _esc  # short, for the markup below
    for text, images in sections or []:
        parts.append("<pre>" + esc(text) + "</pre>")
        parts.extend(f"<img src='{esc(img)}' alt='{esc(img)}'>" for img in images)
    if table:
        parts.append("<pre>" + esc(_table(rows)) + "</pre>")
    for r in rows:
        if curves is not None and r["experiment"] not in curves:
            continue  # its experiment's `report = [...]` does not ask for loss curves
        parts.append(f"<h2>{esc(r['name'])} <small>{esc(r['hash'])}</small></h2>")
        parts.append(f"<p>status {esc(r['status'])}"
                     + (f": {esc(r['reason'])}" if r["reason"] else "")
                     + f"; device {esc(r['device'])}; "
                     f"trainable {esc(r['params'].get('trainable', '?'))} of "
                     f"{esc(r['params'].get('total', '?'))} parameters</p>")
        img = _plot(r, out)
        if img:
            parts.append(f"<img src='{esc(img)}' alt='curves of {esc(r['name'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
