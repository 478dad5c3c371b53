"""Circuit discovery methods and circuit metrics (``specc.api`` builders).

A method's builder returns ``scores(att) -> edge scores`` for an ``Attributor``
(specc/circuits/attribute.py) holding the model and the clean/corrupted pairs; ``discover``
keeps the configured share of edges. A circuit metric's builder returns the per-example metric
on last-token logits, ``metric(logits, clean_logits, answer, corrupt_top)``. Formulas follow
../shared/research/seed1_circuit_lora.md §1.3-1.4.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from specc.api import BuildContext, CircuitMetric, Fraction, Pairs, Range, component


@component("circuit")
def eap(
    *,
    data: Pairs,
    metric: CircuitMetric = "kl_last_token",
    keep: Annotated[Fraction | int, Range(lo=0, lo_open=True)] = "5%",
    select: Literal["top", "threshold", "greedy"] = "top",
    ctx: BuildContext,
) -> Any:
    """Edge attribution patching (one gradient).

    Args:
        data: clean/corrupted prompt pairs (task.circuit)
        metric: what the scores explain
        keep: edges kept: a fraction (5%) or a count
        select: how edges are chosen
    """
    return lambda att: att.eap()


@component("circuit")
def eap_ig(
    *,
    data: Pairs,
    metric: CircuitMetric = "kl_last_token",
    steps: Annotated[int, Range(lo=1)] = 5,
    endpoints: Literal["paper", "left"] = "paper",
    keep: Annotated[Fraction | int, Range(lo=0, lo_open=True)] = "5%",
    select: Literal["top", "threshold", "greedy"] = "top",
    ctx: BuildContext,
) -> Any:
    """EAP with integrated gradients on interpolated embeddings.

    Args:
        data: clean/corrupted prompt pairs (task.circuit)
        metric: what the scores explain
        steps: interpolation steps m
        endpoints: paper: alphas 1..m / m; left: 0..m-1 / m
        keep: edges kept: a fraction (5%) or a count
        select: how edges are chosen
    """
    return lambda att: att.eap_ig(steps, endpoints)


@component("circuit")
def exact_patching(
    *,
    data: Pairs,
    metric: CircuitMetric = "kl_last_token",
    keep: Annotated[Fraction | int, Range(lo=0, lo_open=True)] = "5%",
    select: Literal["top", "threshold", "greedy"] = "top",
    ctx: BuildContext,
) -> Any:
    """Patch every edge (ground truth; small models only).

    Args:
        data: clean/corrupted prompt pairs (task.circuit)
        metric: what the scores explain
        keep: edges kept: a fraction (5%) or a count
        select: how edges are chosen
    """
    return lambda att: att.exact()



@component("circuit_metric")
def kl_last_token(*, ctx: BuildContext) -> Any:
    """KL to the clean distribution at the last token."""
    import torch.nn.functional as F

    def kl(logits: Any, clean: Any, answer: Any, corrupt_top: Any) -> Any:
        return F.kl_div(logits.log_softmax(-1), clean.log_softmax(-1), log_target=True,
                        reduction="none").mean(-1)

    return kl


@component("circuit_metric")
def logit_diff(*, ctx: BuildContext) -> Any:
    """Clean minus corrupted answer logit."""
    def logit_diff(logits: Any, clean: Any, answer: Any, corrupt_top: Any) -> Any:
        return (logits.gather(-1, answer[:, None]) - logits.gather(-1, corrupt_top[:, None]))[:, 0]

    return logit_diff


@component("circuit_metric")
def answer_prob(*, ctx: BuildContext) -> Any:
    """Probability of the clean answer."""
    def answer_prob(logits: Any, clean: Any, answer: Any, corrupt_top: Any) -> Any:
        return logits.softmax(-1).gather(-1, answer[:, None])[:, 0]

    return answer_prob

