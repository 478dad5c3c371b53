"""Compute an experiment's `analysis { ... }` over its finished runs (Note [Analysis encoding]
in specc/compiler/lower_analysis.py): values, fits and the checks that state a paper's claim.

Statistics come from numpy and scipy (`linregress`, `spearmanr`, `kendalltau`); a reducer over no
matching run is NaN, and a check on NaN fails, saying that nothing matched.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs

from specc.compiler import ir

LOWER_IS_BETTER = ("loss", "perplexity", "error", "train_loss")


@attrs.frozen
class RunData:
    """One finished run: its sweep bindings and its metrics rows."""

    name: str
    bindings: dict[str, Any]
    rows: list[dict[str, Any]]


@attrs.frozen
class CheckOutcome:
    text: str
    passed: bool
    detail: str
    span: Any


@attrs.frozen
class Outcome:
    values: dict[str, Any]
    checks: list[CheckOutcome]
    runs: int
    figures: dict[str, ir.Op] = attrs.field(factory=dict)
    evaluator: Any = attrs.field(default=None, repr=False, eq=False)

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "values": _jsonable(self.values),
                "checks": [{"text": c.text, "passed": c.passed, "detail": c.detail,
                            "line": getattr(c.span, "line", None)} for c in self.checks]}

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _word(v: Any) -> Any:
    """An axis value as the word a spec compares it with: a component's or a declaration's name
    (`objective == dsm`), else the value itself."""
    if isinstance(v, dict):
        return v.get("ref") or v.get("name") or v.get("component")
    return v


class Evaluator:
    def __init__(self, runs: list[RunData]) -> None:
        self.runs = runs
        self.values: dict[str, Any] = {}

    # a column is a list with one entry per run (None where the run lacks it)
    def eval(self, v: ir.Value) -> Any:
        match v:
            case ir.Const(value=x):
                return x
            case ir.Var(name=name):
                kind, _, key = name.partition(":")
                if kind == "value":
                    return self.values[key]
                if kind == "axis":
                    return [_word(r.bindings.get(key)) for r in self.runs]
                return ("series", key)
            case ir.MemberV(base=base, name=member):
                fit = self.eval(base)
                return fit[member]
            case ir.Op(op="fn:final", args=[m]):
                _, key = self.eval(m)
                return [next((row[key] for row in reversed(r.rows) if _num(row.get(key))), None)
                        for r in self.runs]
            case ir.Op(op="fn:best", args=[m]):
                _, key = self.eval(m)
                pick = min if any(w in key for w in LOWER_IS_BETTER) else max
                out = []
                for r in self.runs:
                    seen = [row[key] for row in r.rows if _num(row.get(key))]
                    out.append(pick(seen) if seen else None)
                return out
            case ir.Op(op=op, args=args) if op.startswith("fn:"):
                return self.function(op[3:], args)
            case ir.Op(op="neg", args=[a]):
                return _map(lambda x: -x, self.eval(a))
            case ir.Op(op="not", args=[a]):
                return _map(lambda x: not x, self.eval(a))
            case ir.Op(op=op, args=[a, b]):
                return _binary(op, self.eval(a), self.eval(b))
        raise AssertionError(v)

    def function(self, fn: str, args: list[ir.Value]) -> Any:
        when = next((a for a in args if isinstance(a, ir.Op) and a.op == "kw:when"), None)
        axes = next((a for a in args if isinstance(a, ir.Op) and a.op == "kw:axes"), None)
        plain = [a for a in args if a is not when and a is not axes]
        keep = [True] * len(self.runs)
        if when is not None:
            mask = self.eval(when.args[0])
            keep = [bool(m) for m in mask] if isinstance(mask, list) else [bool(mask)] * len(
                self.runs)
        cols = [self.eval(a) for a in plain]
        rows = [i for i in range(len(self.runs)) if keep[i]
                and all(_num(c[i]) if isinstance(c, list) else True for c in cols)]
        import numpy as np

        if fn == "count":
            return float(len(rows))
        if fn in ("mean", "median", "std", "min", "max"):
            xs = np.array([float(cols[0][i]) for i in rows])
            if xs.size == 0:
                return math.nan
            return float({"mean": np.mean, "median": np.median, "min": np.min,
                          "max": np.max}[fn](xs) if fn != "std" else
                         (np.std(xs, ddof=1) if xs.size > 1 else 0.0))
        xs = np.array([float(cols[0][i]) for i in rows])
        ys = np.array([float(cols[1][i]) for i in rows])
        from scipy import stats

        if fn == "linear_fit":
            if xs.size < 2 or np.ptp(xs) == 0:
                return {"slope": math.nan, "intercept": math.nan, "r2": math.nan,
                        "n": float(xs.size)}
            fit = stats.linregress(xs, ys)
            return {"slope": float(fit.slope), "intercept": float(fit.intercept),
                    "r2": float(fit.rvalue ** 2), "n": float(xs.size)}
        if xs.size < 2:
            return math.nan
        if fn == "spearman":
            return float(stats.spearmanr(xs, ys).statistic)
        if fn == "granulated_tau" and axes is not None:
            keys = [str(a.value) for a in axes.args if isinstance(a, ir.Const)]
            return self.granulated_tau(rows, xs, ys, keys)
        return float(stats.kendalltau(xs, ys).statistic)

    def granulated_tau(self, rows: list[int], xs: Any, ys: Any, axes: list[str]) -> float:
        """Jiang et al.'s granulated Kendall coefficient: for each axis, the mean of Kendall's
        tau over the groups of runs that agree on every other listed axis (only that axis
        varies, seeds and unlisted axes being replicates); then the mean over the axes. Groups
        with fewer than two distinct x or y values have no tau and are left out."""
        import numpy as np
        from scipy import stats

        per_axis = []
        for axis in axes:
            others = [a for a in axes if a != axis]
            groups: dict[tuple[str, ...], list[int]] = {}
            for j, i in enumerate(rows):
                b = self.runs[i].bindings
                groups.setdefault(tuple(repr(b.get(o)) for o in others), []).append(j)
            taus = []
            for idx in groups.values():
                gx, gy = xs[idx], ys[idx]
                if len(idx) >= 2 and np.ptp(gx) > 0 and np.ptp(gy) > 0:
                    taus.append(float(stats.kendalltau(gx, gy).statistic))
            if taus:
                per_axis.append(float(np.mean(taus)))
        return float(np.mean(per_axis)) if per_axis else math.nan


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _map(fn: Any, x: Any) -> Any:
    if isinstance(x, list):
        return [None if v is None else fn(v) for v in x]
    return fn(x)


def _binary(op: str, a: Any, b: Any) -> Any:
    import operator

    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul,
           "/": lambda x, y: x / y if y else math.nan, "//": lambda x, y: x // y if y else math.nan,
           "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
           ">": operator.gt, ">=": operator.ge, "and": lambda x, y: bool(x and y),
           "or": lambda x, y: bool(x or y)}
    f = ops[op]
    if isinstance(a, list) or isinstance(b, list):
        n = len(a) if isinstance(a, list) else len(b)
        av = a if isinstance(a, list) else [a] * n
        bv = b if isinstance(b, list) else [b] * n
        out = []
        for x, y in zip(av, bv, strict=True):
            if op in ("==", "!=") or op in ("and", "or"):
                out.append(f(x, y))
            else:
                out.append(None if x is None or y is None else f(x, y))
        return out
    if op in ("<", "<=", ">", ">=") and (not _num(a) or not _num(b)):
        return False  # nothing to compare (no run matched): the check fails
    return f(a, b)


def evaluate(analysis: ir.Analysis, runs: list[RunData]) -> Outcome:
    ev = Evaluator(runs)
    checks = []
    figures: dict[str, ir.Op] = {}
    for step in analysis.steps:
        if isinstance(step.value, ir.Op) and step.value.op.startswith("fig:"):
            figures[step.name] = step.value  # drawn by the report (render)
            continue
        value = ev.eval(step.value)
        if step.name:
            ev.values[step.name] = value
            continue
        passed = bool(value)
        checks.append(CheckOutcome(step.text, passed, _detail(ev, step.value), step.span))
    shown = {k: (v if not isinstance(v, list) else
                 {r.name: x for r, x in zip(runs, v, strict=True)})
             for k, v in ev.values.items()}
    return Outcome(shown, checks, len(runs), figures, ev)


def render(outcome: Outcome, out: Path, experiment: str) -> list[str]:
    """Draw the analysis's figures as PNGs in ``out``; the file names, in order."""
    if not outcome.figures or outcome.evaluator is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specc.report.curves import file_name

    ev: Evaluator = outcome.evaluator
    names = []
    with plt.style.context("default"):
        for name, op in outcome.figures.items():
            kind = op.op[4:]
            kw = {a.op[3:]: a.args[0] for a in op.args
                  if isinstance(a, ir.Op) and a.op.startswith("kw:")}
            group_by = kw.get("by", kw.get("color"))
            groups = ev.eval(group_by) if group_by is not None else [None] * len(ev.runs)
            labels = sorted({str(g) for g in groups}, key=_natural)
            colour = {g: plt.cm.tab10(i % 10) for i, g in enumerate(labels)}
            if kind == "metric_curve":
                metrics = [ev.eval(a)[1] for a in op.args
                           if not (isinstance(a, ir.Op) and a.op.startswith("kw:"))]
                fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6),
                                         squeeze=False)
                for ax, key in zip(axes[0], metrics, strict=True):
                    shown: set[str] = set()
                    for run, g in zip(ev.runs, groups, strict=True):
                        pts = [(r["step"], r[key]) for r in run.rows
                               if _num(r.get(key)) and "step" in r]
                        if not pts:
                            continue
                        label = str(g) if str(g) not in shown else None
                        shown.add(str(g))
                        ax.plot(*zip(*pts, strict=True), color=colour[str(g)], alpha=0.7,
                                label=label)
                    ax.set_xlabel("step")
                    ax.set_ylabel(key)
                    if group_by is not None:
                        ax.legend(title=_axis_name(group_by), fontsize=8)
            else:
                xs, ys = ev.eval(kw["x"]), ev.eval(kw["y"])
                fig, ax = plt.subplots(figsize=(5.5, 3.8))
                for label in labels:
                    pts = [(x, y) for x, y, g in zip(xs, ys, groups, strict=True)
                           if str(g) == label and _num(x) and _num(y)]
                    if not pts:
                        continue
                    if kind == "scatter":
                        ax.scatter(*zip(*pts, strict=True), color=colour[label], label=label)
                        continue
                    by_x: dict[float, list[float]] = {}
                    for x, y in pts:
                        by_x.setdefault(float(x), []).append(float(y))
                    x_sorted = sorted(by_x)
                    mean = [sum(by_x[x]) / len(by_x[x]) for x in x_sorted]
                    low = [m - min(by_x[x]) for m, x in zip(mean, x_sorted, strict=True)]
                    high = [max(by_x[x]) - m for m, x in zip(mean, x_sorted, strict=True)]
                    ax.errorbar(x_sorted, mean, yerr=[low, high], marker="o", capsize=3,
                                color=colour[label], label=label)
                positive = [float(x) for x in xs if _num(x)]
                if positive and min(positive) > 0 and max(positive) / min(positive) >= 20:
                    ax.set_xscale("log")
                ax.set_xlabel(_axis_name(kw["x"]))
                ax.set_ylabel(_axis_name(kw["y"]))
                if group_by is not None:
                    ax.legend(title=_axis_name(group_by), fontsize=8)
            ax_title = f"{experiment}: {name}"
            fig.suptitle(ax_title, fontsize=10)
            fig.tight_layout()
            file = file_name(f"{experiment}_{name}", ".png")
            fig.savefig(out / file, dpi=100)
            plt.close(fig)
            names.append(file)
    return names


def _axis_name(v: ir.Value) -> str:
    if isinstance(v, ir.Var):
        return v.name.partition(":")[2]
    if isinstance(v, ir.Op) and v.op == "fn:final" and v.args:
        return f"final({_axis_name(v.args[0])})"
    return "value"


def _natural(s: str) -> tuple[int, float | str]:
    try:
        return (0, float(s))
    except ValueError:
        return (1, s)


def _detail(ev: Evaluator, v: ir.Value) -> str:
    """The numbers a comparison compared and its outcome (`0.42 < 1 is true`)."""
    if isinstance(v, ir.Op) and len(v.args) == 2 and v.op in ("<", "<=", ">", ">=", "==", "!="):
        a, b = (ev.eval(x) for x in v.args)
        if not _num(a) or not _num(b):
            return "no finished run matched, so there is nothing to compare"
        return f"{_fmt(a)} {v.op} {_fmt(b)} is {'true' if ev.eval(v) else 'false'}"
    if isinstance(v, ir.Op) and v.op in ("and", "or"):
        return "; ".join(_detail(ev, x) for x in v.args)
    return "true" if ev.eval(v) else "false"


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def runs_of(root: Path, experiment: str, names: list[str]) -> list[RunData]:
    """The finished runs among ``names`` (the plan's run hashes) in the store."""
    from specc.store.runs import finished_runs

    found = {p.name: p for p in finished_runs(root, experiment)}
    out = []
    for name in names:
        path = found.get(name)
        if path is None:
            continue
        manifest = json.loads((path / "manifest.json").read_text())
        rows = []
        metrics = path / "metrics.jsonl"
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        out.append(RunData(name, manifest.get("bindings") or {}, rows))
    return out


def write(root: Path, experiment: str, outcome: Outcome, plan: str) -> Path:
    path = root / experiment / "analysis.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"experiment": experiment, "plan": plan, **outcome.to_json()},
                              indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
