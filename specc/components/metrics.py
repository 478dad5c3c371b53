"""Metrics on a named split: loss, perplexity, token accuracy, exact match, parameter counts.

Exact match is greedy generation's exact match, computed in one teacher-forced pass: greedy
decoding reproduces the answer (and stops) exactly when the argmax at every answer position,
given the answer so far, is the answer's next token, and after it the end-of-sequence token.
"""

from __future__ import annotations

import math
from typing import Any

from specc.components.data import DYNAMIC
from specc.diagnostics import SpeccError

RUNTIME_METRICS = ("loss", "perplexity", "token_accuracy", "exact_match")
# Computed by the trainer's CircuitWatch on the circuit measured at the evaluation's step.
CIRCUIT_METRICS = ("node_jaccard", "edge_jaccard", "faithfulness")


def metric_key(cfg: dict[str, Any]) -> str:
    name = str(cfg["component"])
    split = split_of(cfg)
    return name if split in (None, "test") else f"{name}/{split}"


def split_of(cfg: dict[str, Any]) -> str | None:
    split = cfg.get("split")
    return split.get("member") if isinstance(split, dict) else None


def check_supported(metrics: list[dict[str, Any]]) -> None:
    from specc.catalogue.pyread import is_api_component

    for m in metrics:
        if m["component"] not in RUNTIME_METRICS + CIRCUIT_METRICS and not is_api_component(m):
            msg = (f"metric {m['component']} needs circuit analysis, which this version of specc "
                   "does not run yet")
            raise SpeccError(msg)


def evaluate(model: Any, data: Any, metrics: list[dict[str, Any]], *, batch: int,
             forward: Any, shapes: Any = None,
             boundary: Any = None) -> dict[str, float]:
    """Every metric's value; splits are evaluated once for all metrics that read them.

    ``shapes`` is the run's shape policy (evaluation batches get the training shapes);
    ``boundary`` is called after each batch (a compiling backend cuts its graph there).
    """
    import torch

    out: dict[str, float] = {}
    by_split: dict[str, list[dict[str, Any]]] = {}
    for m in metrics:
        if m["component"] in CIRCUIT_METRICS:
            continue
        else:
            by_split.setdefault(split_of(m) or "test", []).append(m)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for split, ms in by_split.items():
            limit = max((m.get("limit") or 0 for m in ms), default=0) or None
            stats = _split_stats(data, split, batch, limit, forward, shapes, boundary)
            for m in ms:
                out[metric_key(m)] = _value(m["component"], stats)
    model.train(was_training)
    return out


def _value(name: str, s: dict[str, float]) -> float:
    loss = s["loss_sum"] / max(s["tokens"], 1)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "token_accuracy": s["correct"] / max(s["tokens"], 1),
        "exact_match": s["exact"] / max(s["examples"], 1),
    }[name]


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
