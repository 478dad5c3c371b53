"""``specc report``: a table of runs and an HTML page with their loss and metric curves."""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.diagnostics import SpeccError
from specc.report import curves as C
from specc.report.curves import file_name
from specc.store.runs import MetricsLog, read_manifest

_SKIP = C.SKIP


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
                    plan: dict[str, set[str] | None],
                    storage: str | None = None) -> list[tuple[str, list[str]]]:
    """Per experiment of a spec: its report sections (the seed-aggregated grid, the search, the
    CBS results, the circuits) and its analysis; then the sections drawn across experiments
    (``plan`` limits grids and circuits to these runs; empty: every stored run)."""
    from specc.report.parts import Drawing

    drawing = Drawing(str(spec), root, out, {e.name: plan.get(e.name) for e in experiments},
                      storage)
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
    """The report of a spec (its current runs, or ``--all``) or of runs named by hash: printed,
    and written as HTML to its own directory, ``ROOT/report/SPEC[-PROFILE]`` or
    ``ROOT/report/RUN`` (``--out`` elsewhere), so one report never overwrites another. A
    report with nothing in it is exit 1, saying why."""
    from specc.store.location import store_root

    spec = Path(args.target)
    root = store_root(args.root, spec if spec.suffix == ".exp" and spec.exists() else None)
    every = bool(getattr(args, "all", False))
    as_json = bool(getattr(args, "json", False))
    say = (lambda text: None) if as_json else print
    profile = getattr(args, "profile", None)
    sections: list[tuple[str, list[str]]] = []
    curves: set[str] | None = None  # experiments whose runs get loss curves (None: all)
    table = True
    order: dict[str, int] = {}
    if spec.suffix == ".exp" and spec.exists():
        out = Path(args.out) if args.out else root / "report" / file_name(
            spec.stem + (f"-{profile}" if profile else ""), "")
        result, plan = _spec(spec, profile)
        if result.plan is None:
            print(result.render())
            return 1
        order = {r.hash: i for ep in result.plan.experiments for i, r in enumerate(ep.runs())
                 if ep.experiment.search is None}
        runs = _spec_runs(root, plan, every)
        stored = len(_spec_runs(root, plan, True))
        if not runs and stored:
            how = f"profile {profile}" if profile else "no profile"
            say(f"note: no run of the spec's current plan ({how}) is stored, but {stored} "
                "run(s) of other definitions or profiles are: give --profile NAME, or --all")
        out.mkdir(parents=True, exist_ok=True)
        exps = result.plan.program.experiments
        storage = getattr(args, "storage", None) or os.environ.get("SPECC_STORAGE") or None
        sections = _sweep_sections(spec, exps, root, out, {} if every else plan, storage)
        pages = {e.name: {part.page for part in reports(e, spec.parent)} for e in exps}
        curves = {name for name, parts in pages.items() if "curves" in parts}
        table = any("table" in parts for parts in pages.values())
        if not runs and not any(images for _, images in sections):
            print(f"specc: error: nothing to report for {spec}: no run of its experiments is "
                  f"stored under {root} (run `specc run {spec}"
                  + (f" --profile {profile}" if profile else "") + "` first, or give --root)",
                  file=sys.stderr)
            return 1
    else:
        runs = find_runs(args.target, root)
        if not runs:
            print(f"specc: error: no run matches {args.target!r} under {root} "
                  "(give a run hash or prefix, a run directory, or a spec)", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else root / "report" / file_name(
            runs[0].name if len(runs) == 1 else args.target, "")
        out.mkdir(parents=True, exist_ok=True)
    for text, _ in sections:
        say(text + "\n")
    rows = sorted((_summary(r) for r in runs), key=lambda r: _order(r, order))
    if table:
        say(_table(rows))
    page, figures = _html(rows, out, sections, curves, table)
    (out / "index.html").write_text(page)
    slim = [{k: v for k, v in r.items() if k not in ("rows", "train")} for r in rows]
    (out / "runs.json").write_text(json.dumps(slim, indent=2, default=str))
    if as_json:
        print(json.dumps({"report": str(out / "index.html"), "runs": slim,
                          "sections": [{"text": t, "images": i} for t, i in sections],
                          "figures": figures}, indent=2, default=str))
    else:
        print(f"\nreport written to {out / 'index.html'}")
    return 0


def _order(row: dict[str, Any], order: dict[str, int]) -> tuple[Any, ...]:
    """Runs by experiment, then in the plan's order (a grid's axis order), then by their
    axis values (numbers as numbers), never by hash."""
    values = tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
                   for v in (row.get("bindings") or {}).values())
    return (str(row.get("experiment")), order.get(row["hash"], len(order)), values,
            row["hash"])


def _summary(run: Path) -> dict[str, Any]:
    """A run's row. The hash is the directory's name (where the run was found), never the
    manifest's word for it; every other manifest value is data, shown escaped."""
    m = read_manifest(run) or {}
    log = MetricsLog(run / "metrics.jsonl")
    rows = log.rows()
    params = m.get("params") if isinstance(m.get("params"), dict) else {}
    bindings = m.get("bindings") if isinstance(m.get("bindings"), dict) else {}
    return {"hash": run.name, "name": str(m.get("name", run.name)),
            "experiment": m.get("experiment"), "status": m.get("status"),
            "reason": m.get("reason"), "step": m.get("step"), "path": str(run),
            "bindings": bindings, "final": rows[-1] if rows else {}, "rows": rows,
            "train": log.rows("train"), "params": params, "device": m.get("device")}


def _metric_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["final"] if k not in _SKIP and k not in keys and k != "kind"]
    return keys


def _table(rows: list[dict[str, Any]]) -> str:
    keys = _metric_keys(rows)
    head = ["run", "hash", "status", "step", *keys]
    lines = [head]
    for r in rows:
        vals = [_num(r["final"].get(k, "")) for k in keys]
        lines.append([r["name"], r["hash"], str(r["status"]), str(r["step"]), *vals])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def _esc(value: object) -> str:
    """Any value as HTML text: quotes escaped too, so it is safe inside attributes."""
    return html.escape(str(value), quote=True)


# A click on a column's head sorts the table by it (numbers as numbers), again to reverse.
_SORT = """<script>document.querySelectorAll('table.sortable th').forEach((th, i) => {
th.onclick = () => { const body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
th.dataset.up = up ? '1' : '0'; const v = c => c.dataset.v ?? c.textContent;
[...body.rows].sort((x, y) => { const a = v(x.cells[i]), b = v(y.cells[i]),
na = parseFloat(a), nb = parseFloat(b);
const d = !isNaN(na) && !isNaN(nb) ? na - nb : a.localeCompare(b); return up ? d : -d; })
.forEach(r => body.appendChild(r)); }; });</script>"""


def _html_table(rows: list[dict[str, Any]]) -> str:
    esc = _esc
    axes: list[str] = []
    for r in rows:
        axes += [k for k in r["bindings"] if k not in axes]
    keys = _metric_keys(rows)
    head = ["run", "hash", "status", "step", *axes, *keys]
    out = ["<table class='sortable'><thead><tr>"
           + "".join(f"<th title='sort'>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = [esc(r["name"]), f"<code>{esc(r['hash'])}</code>", esc(r["status"]),
                 esc(r["step"])]
        values = [r["bindings"].get(a, "") for a in axes] + [r["final"].get(k, "") for k in keys]
        cells += [f"<td data-v='{esc(v)}'>{esc(_num(v))}</td>"
                  if isinstance(v, (int, float)) and not isinstance(v, bool)
                  else f"<td>{esc(_short(v))}</td>" for v in values]
        out.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>"
                                    for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("ref") or v.get("component") or json.dumps(v, sort_keys=True))
    return str(v)


def _html(rows: list[dict[str, Any]], out: Path,
          sections: list[tuple[str, list[str]]] | None = None,
          curves: set[str] | None = None, table: bool = True) -> tuple[str, list[str]]:
    """The page and the figures it shows: the sections, the sortable table of runs, then per
    experiment its runs' curves (overlaid when there are several)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>specc report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f4f4f4;cursor:pointer}img{max-width:100%}</style></head><body>"
             "<h1>specc report</h1>"]
    esc = _esc  # short, for the markup below
    figures: list[str] = []
    for text, images in sections or []:
        parts.append("<pre>" + esc(text) + "</pre>")
        parts.extend(f"<img src='{esc(img)}' alt='{esc(img)}'>" for img in images)
        figures += images
    if table and rows:
        parts.append("<h2>Runs</h2>" + _html_table(rows))
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if curves is None or r["experiment"] in curves:  # `report = [...]` asks for curves
            by_experiment.setdefault(str(r["experiment"]), []).append(r)
    for name, runs in by_experiment.items():
        parts.append(f"<h2>{esc(name)}</h2>")
        if len(runs) > 1:
            images = C.overlays(runs, out, name)
        else:
            r = runs[0]
            parts.append(f"<p>{esc(r['name'])} <code>{esc(r['hash'])}</code>: status "
                         f"{esc(r['status'])}" + (f": {esc(r['reason'])}" if r["reason"] else "")
                         + f"; device {esc(r['device'])}; trainable "
                         f"{esc(r['params'].get('trainable', '?'))} of "
                         f"{esc(r['params'].get('total', '?'))} parameters</p>")
            image = C.single(r, out)
            images = [image] if image else []
        parts.extend(f"<img src='{esc(i)}' alt='{esc(i)}'>" for i in images)
        figures += images
    parts.append(_SORT + "</body></html>")
    return "\n".join(parts), figures
