"""The language-model loop's metrics (loss, perplexity, token accuracy, exact match) and the
circuit metrics, as ``specc.api`` builders: the first return a ``TokenStatistic`` (one pass per
split serves them all), the others a ``CircuitStatistic``.

Exact match is greedy generation's exact match, computed in one teacher-forced pass: greedy
decoding reproduces the answer (and stops) exactly when the argmax at every answer position,
given the answer so far, is the answer's next token, and after it the end-of-sequence token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import attrs

from specc.api import BuildContext, Range, Split, component
from specc.components import split_name
from specc.components.data import DYNAMIC


@attrs.frozen
class TokenStatistic:
    """A language-model metric read from one teacher-forced pass over a split, shared by every
    metric of that split: ``value(stats)`` of the summed loss, tokens, correctly predicted
    tokens, exactly matched answers and examples. ``objective``: the held-out objective, which
    models outside the language-model loop compute with their own objective instead."""

    split: str
    limit: int | None
    value: Callable[[dict[str, float]], float]
    objective: bool = False


@attrs.frozen
class CircuitStatistic:
    """A metric of the circuit measured at an evaluation's step: ``value(circuit, base circuit,
    discovery info) -> {key: value}`` (computed by the trainer's CircuitWatch)."""

    value: Callable[[Any, Any, dict[str, Any]], dict[str, float]]


def stop_when(cond: Any, values: dict[str, float]) -> bool:
    """Whether ``train.stop_when`` (``loss <= 2.0``: a metric, an operator, a number) holds
    for an evaluation's ``values``; false when the metric is not among them."""
    if not isinstance(cond, dict) or "op" not in cond:
        return False
    left, right = cond["args"]
    key = metric_key(left) if isinstance(left, dict) else None
    if key is None or key not in values or not isinstance(right, (int, float)):
        return False
    v = values[key]
    return bool({"<": v < right, "<=": v <= right, ">": v > right, ">=": v >= right,
                 "==": v == right, "!=": v != right}[cond["op"]])


def metric_key(cfg: dict[str, Any]) -> str:
    name = str(cfg["component"])
    split = split_of(cfg)
    return name if split in (None, "test") else f"{name}/{split}"


def split_of(cfg: dict[str, Any]) -> str | None:
    split = cfg.get("split")
    return split.get("member") if isinstance(split, dict) else None


def evaluate(model: Any, data: Any, stats: dict[str, TokenStatistic], *, batch: int,
             forward: Any, shapes: Any = None,
             boundary: Any = None) -> dict[str, float]:
    """Every token statistic's value (by metric key); each split is read once for all the
    statistics of it.

    ``shapes`` is the run's shape policy (evaluation batches get the training shapes);
    ``boundary`` is called after each batch (a compiling backend cuts its graph there).
    """
    import torch

    out: dict[str, float] = {}
    by_split: dict[str, list[tuple[str, TokenStatistic]]] = {}
    for key, stat in stats.items():
        by_split.setdefault(stat.split, []).append((key, stat))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for split, ms in by_split.items():
            limit = max((s.limit or 0 for _, s in ms), default=0) or None
            totals = _split_stats(data, split, batch, limit, forward, shapes, boundary)
            for key, stat in ms:
                out[key] = stat.value(totals)
    model.train(was_training)
    return out


def _split_stats(data: Any, split: str, batch: int, limit: int | None, forward: Any,
                 shapes: Any, boundary: Any) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    totals = {"loss_sum": 0.0, "tokens": 0.0, "correct": 0.0, "exact": 0.0, "examples": 0.0}
    acc: dict[str, Any] = {}
    for b in data.eval_batches(split, batch, limit, shapes or DYNAMIC):
        logits, labels = forward(b)
        mask = labels != -100
        flat = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100, reduction="none").view(labels.shape)
        hit = (logits.argmax(-1) == labels) & mask
        parts = {
            "loss_sum": flat.sum(),
            "tokens": mask.sum(),
            "correct": hit.sum(),
            "exact": ((hit | ~mask).all(dim=1) & mask.any(dim=1)).sum(),
            "examples": mask.any(dim=1).sum(),
        }
        for k, v in parts.items():  # accumulate on the device; one readback at the end
            acc[k] = acc[k] + v.double() if k in acc else v.double()
        if boundary is not None:
            boundary()
    for k, v in acc.items():
        totals[k] = float(v.item())
    del torch
    return totals


# ------------------------------------------------------------------------------------ builders
@component("metric")
def loss(*, split: Split | None = None, ctx: BuildContext) -> Any:
    """The objective on held-out data (mean token cross-entropy for language models).

    Args:
        split: split (none: held-out)
    """
    return TokenStatistic(split_name(split), None, lambda s: s["loss_sum"] / max(s["tokens"], 1),
                          objective=True)


@component("metric", requires=("causal_lm",))
def perplexity(*, split: Split | None = None, ctx: BuildContext) -> Any:
    """Exp of the loss.

    Args:
        split: split (none: held-out)
    """
    return TokenStatistic(split_name(split), None, lambda s: math.exp(
        min(s["loss_sum"] / max(s["tokens"], 1), 50.0)))


@component("metric", requires=("causal_lm",))
def token_accuracy(*, split: Split | None = None, ctx: BuildContext) -> Any:
    """Share of next tokens predicted exactly.

    Args:
        split: split
    """
    return TokenStatistic(split_name(split), None, lambda s: s["correct"] / max(s["tokens"], 1))


@component("metric", requires=("causal_lm",))
def exact_match(
    *,
    split: Split,
    limit: Annotated[int | None, Range(lo=1)] = None,
    ctx: BuildContext,
) -> Any:
    """Share of generated answers that match exactly.

    Args:
        split: the split to evaluate (task.test)
        limit: examples evaluated (none: all)
    """
    return TokenStatistic(split_name(split), limit, lambda s: s["exact"] / max(s["examples"], 1))
