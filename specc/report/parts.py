"""The report's built-in parts (``specc.api`` builders of kind report), drawn by ``specc report``
for the experiments whose `report = [...]` names them (every part that applies by default).

A report's builder returns a ``Report``: a ``section`` drawn per experiment, an ``across``
section drawn once over the spec's experiments, or a ``page`` part of the run summary (loss
curves, the metrics table). Parts that share a drawing (the CBS curve and fit, the circuit
figures) return the same function and are drawn once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from specc.api import BuildContext, component

Section = tuple[str, list[str]]


@attrs.frozen
class Drawing:
    """Where a report is drawn: the spec, the run store, the output folder, and the runs of the
    spec's plan per experiment (None: every stored run)."""

    spec: str
    root: Path
    out: Path
    hashes: dict[str, set[str] | None]
    storage: str | None = None  # a search's study storage (`--storage`), else the spec's


@attrs.frozen
class Report:
    section: Callable[[Any, Drawing], Section | None] | None = None
    across: Callable[[list[Any], Drawing], Section | None] | None = None
    page: str | None = None


def _table(exp: Any, d: Drawing) -> Section | None:
    from specc.report import sweeps

    if exp.search is not None:
        return sweeps.search_report(exp, d.spec, d.root, d.out, d.storage)
    if exp.sweep is None or exp.sweep.kind == "cbs":
        return None
    rows = sweeps.aggregate_grid(exp, d.root, d.hashes.get(exp.name))
    (d.out / f"{exp.name}_grid.json").write_text(json.dumps(rows, indent=2))
    return (f"grid {exp.name} (final metrics over seeds):\n" + sweeps.grid_text(rows), [])


def _cbs(exp: Any, d: Drawing) -> Section | None:
    from specc.report import sweeps

    if exp.search is not None or exp.sweep is None or exp.sweep.kind != "cbs":
        return None
    return sweeps.cbs_report(exp, d.root, d.out)


def _circuits(exp: Any, d: Drawing) -> Section | None:
    from specc import ir
    from specc.report import sweeps

    circuit = exp.field("circuit")
    if circuit is None or isinstance(circuit, ir.Const):
        return None
    return sweeps.circuit_report(exp, d.root, d.out, d.hashes.get(exp.name))


def _cbs_scaling(exps: list[Any], d: Drawing) -> Section | None:
    from specc.report import sweeps

    cbs = [e for e in exps if e.sweep is not None and e.sweep.kind == "cbs"]
    text, images = sweeps.cbs_scaling(cbs, d.root, d.out)
    return (text, images) if text else None


# ------------------------------------------------------------------------------------ builders
@component("report")
def loss_curve(*, ctx: BuildContext) -> Any:
    """Loss against steps and tokens."""
    return Report(page="curves")


@component("report")
def metric_table(*, ctx: BuildContext) -> Any:
    """Final metrics per run."""
    return Report(section=_table, page="table")


@component("report")
def cbs_curve(*, ctx: BuildContext) -> Any:
    """S(B) relative to linear scaling, B* marked."""
    return Report(section=_cbs)


@component("report")
def cbs_fit(*, ctx: BuildContext) -> Any:
    """The S(B) = a + b/B fit and B* per target."""
    return Report(section=_cbs)


@component("report")
def cbs_scaling(*, ctx: BuildContext) -> Any:
    """B* against model and data size."""
    return Report(across=_cbs_scaling)


@component("report")
def circuit_graph(*, ctx: BuildContext) -> Any:
    """A drawing of the circuit."""
    return Report(section=_circuits)


@component("report")
def rank_per_layer(*, ctx: BuildContext) -> Any:
    """LoRA rank per layer."""
    return Report(section=_circuits)


@component("report")
def edge_change(*, ctx: BuildContext) -> Any:
    """Edge change per layer."""
    return Report(section=_circuits)

