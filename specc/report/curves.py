"""Curves of a report: the runs of an experiment overlaid on shared axes, one figure per metric,
coloured by configuration (the sweep's axis values, in the plan's order), the seeds of one
configuration drawn as their mean with a band from the lowest to the highest; a run alone gets
its own figure. Drawn under matplotlib's default style in an rc context, so a style another
library set (Optuna's ggplot) neither reaches these figures nor outlives them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SKIP = {"step", "tokens", "items", "time", "lr", "kind"}


def number(v: object) -> float:
    """A plotted value: a number, or NaN (a gap) for anything a damaged row holds."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def file_name(stem: str, suffix: str) -> str:
    """A file name for the report folder built from a run's or experiment's name: only
    letters, digits, '_', '.', '-', never a path.

    Example:
        >>> file_name("../../evil", "_curves.png")
        'evil_curves.png'
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip("._-") or "run"
    return cleaned[:128] + suffix


@contextmanager
def pyplot() -> Iterator[Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(), plt.style.context("default"):
        yield plt


def config_of(row: dict[str, Any]) -> dict[str, Any]:
    """A run's sweep bindings without its seed: what its colour says."""
    return {k: v for k, v in (row.get("bindings") or {}).items() if k != "seed"}


def label(config: dict[str, Any]) -> str:
    def short(v: Any) -> str:
        if isinstance(v, dict):
            return str(v.get("ref") or v.get("component") or json.dumps(v, sort_keys=True))
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={short(v)}" for k, v in config.items()) or "one configuration"


def metrics_of(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics the runs' evaluation rows hold, and train_loss from the training rows."""
    keys: list[str] = []
    if any(r.get("train") for r in rows):
        keys.append("train_loss")
    for r in rows:
        for row in r["rows"]:
            for k, v in row.items():
                if (k not in SKIP and k not in keys and not k.endswith("_params")
                        and isinstance(v, (int, float)) and not isinstance(v, bool)):
                    keys.append(k)
    return keys


def _series(run: dict[str, Any], metric: str) -> dict[float, float]:
    rows = run["train"] if metric == "train_loss" and run.get("train") else run["rows"]
    return {number(r.get("step")): number(r.get(metric)) for r in rows if metric in r}


def overlays(runs: list[dict[str, Any]], out: Path, experiment: str) -> list[str]:
    """One figure per metric over ``runs`` (in plan order), grouped by configuration."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(json.dumps(config_of(r), sort_keys=True, default=str), []).append(r)
    images = []
    with pyplot() as plt:
        cmap = plt.get_cmap("viridis" if len(groups) > 10 else "tab10")
        for metric in metrics_of(runs):
            fig, ax = plt.subplots(figsize=(6.4, 4))
            for i, members in enumerate(groups.values()):
                colour = cmap(i / max(len(groups) - 1, 1) if len(groups) > 10 else i)
                name = label(config_of(members[0]))
                series = [_series(r, metric) for r in members]
                steps = sorted(set.intersection(*(set(s) for s in series)) - {math.nan})
                if not steps:
                    continue
                values = [[s[x] for s in series] for x in steps]
                mean = [sum(v) / len(v) for v in values]
                marker = "o" if metric != "train_loss" and len(steps) < 30 else None
                if len(members) > 1:
                    ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values],
                                    color=colour, alpha=0.2, lw=0)
                    name += f" ({len(members)} seeds)"
                ax.plot(steps, mean, color=colour, marker=marker, ms=3, lw=1.5, label=name)
            ax.set_xlabel("step")
            ax.set_title(f"{experiment}: {metric}")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            fig.tight_layout()
            image = file_name(f"{experiment}_{metric}", ".png")
            fig.savefig(out / image, dpi=100)
            plt.close(fig)
            images.append(image)
    return images


def single(row: dict[str, Any], out: Path) -> str | None:
    """A run's own figure: its losses (the learning curve from the training rows) beside its
    other metrics."""
    data = row["rows"]
    if not data and not row.get("train"):
        return None
    keys = metrics_of([row])
    losses = [k for k in keys if "loss" in k or "perplexity" in k]
    others = [k for k in keys if k not in losses]
    with pyplot() as plt:
        fig, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6, 4),
                                 squeeze=False)
        for k in losses:
            s = _series(row, k)
            axes[0][0].plot(list(s), list(s.values()),
                            marker=None if k == "train_loss" else "o", label=k)
        axes[0][0].set_xlabel("step")
        axes[0][0].set_title("loss")
        if axes[0][0].get_legend_handles_labels()[0]:  # an evaluation-only run has none
            axes[0][0].legend()
        for k in others:
            s = _series(row, k)
            axes[0][1].plot(list(s), list(s.values()), marker="o", label=k)
        if others:
            axes[0][1].set_xlabel("step")
            axes[0][1].set_title("metrics")
            axes[0][1].legend()
        fig.suptitle(str(row["name"]))
        fig.tight_layout()
        name = file_name(f"{row['experiment']}-{row['hash']}", "_curves.png")
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    return name
