"""Circuit discovery methods, circuit metrics, the metrics of a circuit along training and
circuit-aware LoRA (``specc.api`` builders).

A method's builder returns ``scores(att) -> edge scores`` for an ``Attributor``
(specc/circuits/attribute.py) holding the model and the clean/corrupted pairs; ``discover``
keeps the configured share of edges. A circuit metric's builder returns the per-example metric
on last-token logits, ``metric(logits, clean_logits, answer, corrupt_top)``. Formulas follow
../shared/research/seed1_circuit_lora.md §1.3-1.4. The circuit metrics of a run
(``node_jaccard``...) return a ``CircuitStatistic`` (computed by the trainer's CircuitWatch);
``circuit_lora`` is a policy (``apply(model, at)``, specc/components/policies.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from specc.api import (
    BuildContext,
    Circuit,
    CircuitMetric,
    Data,
    Fraction,
    Model,
    Pairs,
    Policy,
    Range,
    Selector,
    Targets,
    component,
)
from specc.components.metrics import CircuitStatistic
from specc.components.policies import Applying, layered_lora


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


# ------------------------------------------------------------------------ circuits along training
@component("metric")
def node_jaccard(*, circuit: Circuit, other: Model | Circuit, ctx: BuildContext) -> Any:
    """Node Jaccard of the circuit with another's.

    Args:
        circuit: the measured circuit
        other: what to compare with
    """
    from specc.circuits.circuit import node_jaccard as jaccard

    return CircuitStatistic(lambda circuit, base, info: {"node_jaccard": jaccard(circuit, base)})


@component("metric")
def edge_jaccard(*, circuit: Circuit, other: Model | Circuit, ctx: BuildContext) -> Any:
    """Edge Jaccard of the circuit with another's.

    Args:
        circuit: the measured circuit
        other: what to compare with
    """
    from specc.circuits.circuit import edge_jaccard as jaccard

    return CircuitStatistic(lambda circuit, base, info: {"edge_jaccard": jaccard(circuit, base)})


@component("metric")
def faithfulness(*, circuit: Circuit, ctx: BuildContext) -> Any:
    """Metric recovered by the circuit alone (patching every edge outside it):
    `.paper_percent`, `.normalized`, `.baseline`, `.circuit`.

    Args:
        circuit: the circuit
    """
    # patching every edge outside the circuit (measured when the circuit was found)
    return CircuitStatistic(lambda circuit, base, info: {
        f"faithfulness.{k}": float(v) for k, v in info["faithfulness"].items()})


# ------------------------------------------------------------------------------ circuit-aware LoRA
@component("policy")
def circuit_lora(
    *,
    probe: Policy = "lora(rank = 2)",
    probe_epochs: Annotated[float, Range(lo=0, lo_open=True)] = 2,
    critical: Selector = "top_layers(5)",
    rank_other: Annotated[int, Range(lo=1)] = 16,
    rank_critical: Annotated[int, Range(lo=1)] = 64,
    alpha_ratio: Annotated[float, Range(lo=0, lo_open=True)] = 2.0,
    allocation: Literal["critical", "exponential"] = "critical",
    include_input: bool = True,
    normalize: bool = False,
    targets: Targets | list[str] = "all_linear",
    subtasks: list[Data] = (),
    ctx: BuildContext,
) -> Any:
    """Circuit-aware LoRA: higher rank on the layers whose circuit edges change most in a probe
    fine-tune.

    Args:
        probe: the cheap probe fine-tune
        probe_epochs: epochs of the probe
        critical: which layers are critical
        rank_other: rank elsewhere
        rank_critical: rank on critical layers
        alpha_ratio: alpha = ratio * rank
        allocation: two-level ranks, or the exponential-percentile allocation
        include_input: count input-node edges to layer 0
        normalize: normalize both circuits' scores
        targets: modules that get adapters
        subtasks: compositional tasks: the union of these subtasks' circuits (mean score on
            shared edges, truncated to the composite circuit's edge count) picks the critical
            layers, instead of the task's own circuit
    """
    cfg = ctx.config

    def apply(model: Any, at: Applying) -> Any:
        import torch

        from specc.circuits.allocate import allocate

        # The adapters start from the random state plain LoRA would see: the probe
        # fine-tunes' draws must not change the initialization being compared.
        state = torch.random.get_rng_state()
        ranks = allocate(model, at.data, at.run, at.path, at.device, before=at.base_circuit,
                         build_data=at.build_data)
        torch.random.set_rng_state(state)
        return layered_lora(model, cfg, ranks)

    return apply
