"""Built-in components written with ``specc.api``, registered through the ``specc.components``
entry point exactly as a plug-in's are: the objectives and the metrics that work on any model
that provides what they require.

The builders import torch when they are called (at run time), never at module level: ``check``
reads this file's signatures with ``ast`` (``specc.catalogue.pyread``).
"""

from __future__ import annotations

from typing import Annotated, Any

from specc.api import BuildContext, Loss, Range, Split, component
from specc.components import split_name


@component("objective", requires=("causal_lm", "tokens"))
def next_token(*, ctx: BuildContext) -> Any:
    """Next-token cross-entropy, summed over the label tokens and weighted by their count.

    The default objective of causal language models; it reproduces specc's language-model
    loop exactly. Under the chunked_ce rewrite (Note [Rewrites]) the batch's logits are never
    formed: specc/components/fused.py.
    """
    import torch.nn.functional as F

    if "chunked_ce" in ctx.rewrites and hasattr(F, "linear_cross_entropy"):  # torch >= 2.13
        from specc.components.fused import chunked_next_token

        return chunked_next_token

    def objective(model: Any, batch: dict[str, Any]) -> Loss:
        out = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
        logits, labels = out.logits, batch["labels"]
        if not batch.get("shifted"):
            logits, labels = logits[:, :-1], labels[:, 1:]
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                ignore_index=-100, reduction="sum")
        return Loss(total, (labels != -100).sum())

    return objective


@component("objective", requires=("classifier",))
def cross_entropy(label_smoothing: Annotated[float, Range(lo=0, hi=1, hi_open=True)] = 0.0,
                  *, ctx: BuildContext) -> Any:
    """Cross-entropy of a classifier's logits ``model(batch["x"])`` against ``batch["y"]``,
    summed over items and weighted by the item count.

    Args:
        label_smoothing: share of probability spread over the other classes (0: none)
    """
    import torch.nn.functional as F

    def objective(model: Any, batch: dict[str, Any]) -> Loss:
        logits = model(batch["x"])
        y = batch["y"]
        total = F.cross_entropy(logits.float(), y, reduction="sum",
                                label_smoothing=label_smoothing)
        return Loss(total, y.shape[0])

    return objective


@component("objective", requires=("regressor",))
def mse(*, ctx: BuildContext) -> Any:
    """Squared error of ``model(batch["x"])`` against ``batch["y"]``, summed over items (and
    output dimensions) and weighted by the item count."""

    def objective(model: Any, batch: dict[str, Any]) -> Loss:
        pred = model(batch["x"]).float()
        y = batch["y"].float().reshape(pred.shape)
        return Loss(((pred - y) ** 2).sum(), y.shape[0])

    return objective


@component("metric", requires=("classifier",))
def accuracy(split: Split | None = None, *, ctx: BuildContext) -> Any:
    """Share of items whose arg-max class is ``batch["y"]``.

    Args:
        split: the split evaluated (none: the held-out split)
    """
    name = split_name(split)

    def measure(model: Any, data: Any) -> float:
        import torch

        hit = total = None
        for batch in data.eval_batches(name, 256):
            batch = ctx.to_device(batch)
            pred = model(batch["x"]).argmax(-1)
            h = (pred == batch["y"]).sum()
            hit = h if hit is None else hit + h
            total = batch["y"].shape[0] + (total or 0)
        if total is None:
            return float("nan")
        return float(torch.as_tensor(hit).item()) / total

    return measure


@component("metric")
def trainable_params(*, ctx: BuildContext) -> Any:
    """Trainable parameter count (any model; adapters only, under a LoRA policy)."""
    from specc.components.policies import count_params

    return lambda model, data: float(count_params(model)[0])


@component("metric")
def total_params(*, ctx: BuildContext) -> Any:
    """Total parameter count (any model)."""
    from specc.components.policies import count_params

    return lambda model, data: float(count_params(model)[1])
