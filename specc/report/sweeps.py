"""Sweep reports: seed-aggregated grids, Optuna trial tables and plots, CBS curves; CSV/JSON."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.store.runs import MetricsLog, read_manifest

_SKIP = {"step", "tokens", "time", "lr"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def aggregate_grid(exp: ir.Experiment, root: Path,
                   hashes: set[str] | None = None) -> list[dict[str, Any]]:
    """Final metrics per configuration, over its seeds: mean, std and a 95% t interval
    (over the runs in ``hashes``, the spec's current plan, when given)."""
    groups: dict[str, dict[str, Any]] = {}
    for d in sorted((root / exp.name).glob("*/manifest.json")):
        if hashes is not None and d.parent.name not in hashes:
            continue
        m = read_manifest(d.parent) or {}
        if m.get("status") != "finished":
            continue
        rows = MetricsLog(d.parent / "metrics.jsonl").rows()
        if not rows:
            continue
        key_b = {k: v for k, v in (m.get("bindings") or {}).items() if k != "seed"}
        key = json.dumps(key_b, sort_keys=True)
        g = groups.setdefault(key, {"config": key_b, "seeds": [], "values": {}})
        g["seeds"].append((m.get("bindings") or {}).get("seed", m.get("seed")))
        for k, v in rows[-1].items():
            if k not in _SKIP and isinstance(v, (int, float)):
                g["values"].setdefault(k, []).append(float(v))
    out = []
    for g in groups.values():
        stats = {}
        for k, vs in g["values"].items():
            mean = statistics.fmean(vs)
            std = statistics.stdev(vs) if len(vs) > 1 else 0.0
            half = _t95(len(vs)) * std / math.sqrt(len(vs)) if len(vs) > 1 else 0.0
            stats[k] = {"mean": mean, "std": std, "ci95": [mean - half, mean + half],
                        "n": len(vs)}
        out.append({"config": g["config"], "seeds": g["seeds"], "metrics": stats})
    return out


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def grid_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        cfg = ", ".join(f"{k}={_short(v)}" for k, v in r["config"].items()) or "(one config)"
        parts = [f"{k} {s['mean']:.4g} ± {s['std']:.2g} (95% CI {s['ci95'][0]:.4g}.."
                 f"{s['ci95'][1]:.4g}, n={s['n']})" for k, s in r["metrics"].items()
                 if not k.endswith("_params")]
        lines.append(f"  {cfg}: " + "; ".join(parts))
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("ref") or v.get("component") or v)
    return str(v)


def search_report(exp: ir.Experiment, spec: str, root: Path, out: Path,
                  storage: str | None = None) -> tuple[str, list[str]]:
    """Trial table, best configuration, importance and history plots; trials.csv/.json."""
    import optuna

    from specc.diagnostics import SpeccError
    from specc.sweeps.worker import Sweep, summary

    try:
        sweep = Sweep(spec, exp, root, storage=storage, profile=None, backend=None,
                      create=False)
    except SpeccError as exc:
        return f"search {exp.name}: {exc}", []
    rows = summary(sweep)
    (out / f"{exp.name}_trials.json").write_text(json.dumps(rows, indent=2, default=str))
    keys = sorted({k for r in rows for k in r["params"]})
    with (out / f"{exp.name}_trials.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", *keys, "values", "failure", "retry_of", "run"])
        for r in rows:
            w.writerow([r["number"], r["state"], *[r["params"].get(k) for k in keys],
                        r["values"], r["failure"], r["retry_of"], r["run"]])
    lines = [f"search {exp.name}: study {sweep.name} ({sweep.shown_url})",
             f"  {'trial':>5}  {'state':<8}  params -> values"]
    for r in rows:
        vals = ", ".join(f"{v:.4g}" for v in r["values"] or [])
        extra = f"  [{r['failure']}: {r['reason']}]" if r["failure"] else ""
        lines.append(f"  {r['number']:>5}  {r['state']:<8}  {r['params']} -> {vals}{extra}")
    images = []
    complete = [t for t in sweep.trials() if t.state == optuna.trial.TrialState.COMPLETE]
    if complete and len(sweep.objectives) == 1:
        best = sweep.study.best_trial
        lines.append(f"  best: trial {best.number} {best.params} -> {best.value:.4g}")
        plt = _plt()
        # Optuna's plots set the ggplot style globally: inside an rc context it ends here;
        # their "experimental" warning says nothing to a reader of the report
        import warnings

        from optuna.visualization import matplotlib as ovm

        with plt.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = ovm.plot_optimization_history(sweep.study)
            name = f"{exp.name}_history.png"
            ax.figure.savefig(out / name, dpi=90, bbox_inches="tight")
            plt.close(ax.figure)
            images.append(name)
            if len(complete) >= 3 and len(complete[0].params) >= 2:
                ax = ovm.plot_param_importances(sweep.study)
                name = f"{exp.name}_importance.png"
                ax.figure.savefig(out / name, dpi=90, bbox_inches="tight")
                plt.close(ax.figure)
                images.append(name)
    return "\n".join(lines), images


def cbs_report(exp: ir.Experiment, root: Path, out: Path) -> tuple[str, list[str]]:
    """S(B) relative to linear scaling with B* marked, and the fit on log-log axes."""
    from specc.sweeps.cbs import render

    path = root / exp.name / "cbs.json"
    if not path.exists():
        return f"cbs {exp.name}: no results yet (specc run it first)", []
    data = json.loads(path.read_text())
    (out / f"{exp.name}_cbs.json").write_text(json.dumps(data, indent=2))
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ref = data["reference"]
    for r in data["results"]:
        pts = [(row["batch"], row["steps"]) for row in r["table"] if row["steps"]]
        s_ref = next((s for b, s in pts if b == ref), None)
        label = f"target {r['target']['value']:.3f}"
        if s_ref:
            ax1.plot([b for b, _ in pts], [s * b / (s_ref * ref) for b, s in pts], "o-",
                     label=label)
        ax2.loglog([b for b, _ in pts], [s for _, s in pts], "o", label=label)
        if "fit" in r:
            f = r["fit"]
            xs = [2 ** (i / 8) for i in range(0, 8 * 12)]
            xs = [x for x in xs if min(b for b, _ in pts) / 2 <= x <= max(b for b, _ in pts) * 2]
            ax2.loglog(xs, [f["a"] + f["b"] * x ** (-f["alpha"]) for x in xs], "-", alpha=0.6)
            ax1.axvline(r["b_star"], linestyle="--", alpha=0.6)
            ax2.axvline(r["b_star"], linestyle="--", alpha=0.6)
    ax1.axhline(1 + data["overhead"], color="gray", linestyle=":")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size B (sequences)")
    ax1.set_ylabel("S(B)·B / (S(B_ref)·B_ref)")
    ax1.set_title("token overhead vs linear scaling (B* dashed)")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel("steps to target S(B)")
    ax2.set_title("S(B) and the fit a + b/B^α")
    ax1.legend()
    fig.tight_layout()
    name = f"{exp.name}_cbs.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return f"cbs {exp.name}:\n" + render(data), [name]


def circuit_report(exp: ir.Experiment, root: Path, out: Path,
                   hashes: set[str] | None = None) -> tuple[str, list[str]]:
    """Circuit-aware LoRA: ranks and edge change per layer per run, and circuit drawings."""
    lines = [f"circuits {exp.name}:"]
    images: list[str] = []
    drawn = False
    for d in sorted((root / exp.name).glob("*/manifest.json")):
        if hashes is not None and d.parent.name not in hashes:
            continue
        run = d.parent
        m = read_manifest(run) or {}
        alloc_path = run / "allocation.json"
        if alloc_path.exists():
            alloc = json.loads(alloc_path.read_text())
            change = ", ".join(f"{x:.3g}" for x in alloc["edge_change_per_layer"])
            lines.append(f"  {m.get('name')}: ranks per layer {alloc['ranks']}, critical "
                         f"layers {alloc['critical_layers']}, edge change per layer [{change}]")
        base = run / "circuits" / "base.json"
        if base.exists() and not drawn:
            name = f"{exp.name}_circuit.png"
            draw_circuit(json.loads(base.read_text()), out / name,
                         "base model circuit")
            images.append(name)
            drawn = True
    return "\n".join(lines), images


def draw_circuit(circuit: dict[str, Any], path: Path, title: str) -> None:
    """Nodes by layer (input at the bottom, logits at the top), heads side by side; edge width
    and color by signed score (q/k/v collapsed)."""
    plt = _plt()
    layers, heads = circuit["layers"], circuit["heads"]

    def pos(node: str) -> tuple[float, float]:
        if node == "input":
            return heads / 2, 0.0
        if node == "logits":
            return heads / 2, 2 * layers + 1.0
        layer = int(node[1:].split(".")[0])
        if node.startswith("m"):
            return heads / 2, 2 * layer + 2.0
        return float(node.split(".h")[1]), 2 * layer + 1.0

    fig, ax = plt.subplots(figsize=(max(5, heads * 1.2), max(5, layers * 1.3)))
    edges = circuit["collapsed"]
    top = max((abs(e["score"]) for e in edges), default=1.0) or 1.0
    for e in edges:
        (x0, y0), (x1, y1) = pos(e["from"]), pos(e["to"])
        ax.plot([x0, x1], [y0, y1], color="tab:blue" if e["score"] >= 0 else "tab:red",
                linewidth=0.5 + 3 * abs(e["score"]) / top, alpha=0.6)
    for node in circuit["nodes"]:
        x, y = pos(node)
        ax.scatter([x], [y], s=120, color="black" if node in ("input", "logits") else
                   ("tab:green" if node.startswith("m") else "tab:orange"), zorder=3)
        ax.annotate(node, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_title(title + f" ({len(edges)} edges)", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cbs_scaling(exps: list[ir.Experiment], root: Path, out: Path) -> tuple[str, list[str]]:
    """B* against model size N (non-embedding parameters) across CBS experiments, and against
    data size D (the tokens of each loss_at target) within each; power-law fits and a plot."""
    from specc.compiler import params as P
    from specc.sweeps.cbs_fit import fit_power

    points_n: dict[float, list[tuple[float, float]]] = {}  # target tokens -> (N, B*)
    points_d: dict[str, list[tuple[float, float]]] = {}  # experiment -> (D, B*)
    for exp in exps:
        path = root / exp.name / "cbs.json"
        model = exp.field("model")
        decl = exp.decl(model.name) if isinstance(model, ir.Ref) else None
        n = P.non_embedding_params(decl.value) if decl and isinstance(decl.value, ir.Comp) \
            else None
        if not path.exists() or not n:
            continue
        for r in json.loads(path.read_text())["results"]:
            if "b_star" not in r or r["target"]["kind"] != "loss_at":
                continue
            points_n.setdefault(r["target"]["tokens"] / n, []).append((n, r["b_star"]))
            points_d.setdefault(exp.name, []).append((r["target"]["tokens"], r["b_star"]))
    lines = ["B* scaling:"]
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for ratio, pts in points_n.items():
        if len(pts) >= 2:
            fit = fit_power([p[0] for p in pts], [p[1] for p in pts])
            lines.append(f"  B* ∝ N^{fit['gamma']:.3f} (c {fit['c']:.3g}) at D = {ratio:g}·N "
                         f"over {len(pts)} models")
            ax1.loglog(*zip(*sorted(pts), strict=True), "o-", label=f"D = {ratio:g}·N")
            drawn = True
    for name, pts in points_d.items():
        if len(pts) >= 2:
            fit = fit_power([p[0] for p in pts], [p[1] for p in pts])
            lines.append(f"  {name}: B* ∝ D^{fit['gamma']:.3f} over {len(pts)} targets")
            ax2.loglog(*zip(*sorted(pts), strict=True), "o-", label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return "", []
    ax1.set_xlabel("N (non-embedding parameters)")
    ax1.set_ylabel("B*")
    ax2.set_xlabel("D (tokens)")
    for ax in (ax1, ax2):
        ax.legend() if ax.get_legend_handles_labels()[0] else None
    fig.tight_layout()
    name = "cbs_scaling.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return "\n".join(lines), [name]
