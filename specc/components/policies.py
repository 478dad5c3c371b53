"""Policies: which parameters train. Full, freeze by pattern, LoRA and AdaLoRA through peft, and
LoRA with per-layer ranks (circuit-aware, and the random-layers control); the LoRA targets and
circuit-aware LoRA's layer selectors. Each is a ``specc.api`` builder: a policy's returns
``apply(model, at: Applying) -> model``, a targets component's ``modules(model) -> [suffix]``,
a selector's ``pick(sums per layer) -> [layer]``."""

from __future__ import annotations

import random
import re
from typing import Annotated, Any

import attrs

from specc.api import BuildContext, Range, Targets, component
from specc.diagnostics import SpeccError

# Linear modules of one block per model type, as module-name suffixes (Note [Linear modules per
# block] in specc/compiler/params.py gives the same list with shapes).
LINEARS = {
    "gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
    "gpt_neox": ["attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h",
                 "mlp.dense_4h_to_h"],
    "llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
}
LAYERS = {"gpt2": "h", "gpt_neox": "layers", "llama": "layers"}


def model_type(model: Any) -> str:
    t = str(getattr(model.config, "model_type", ""))
    if t not in LINEARS:
        msg = f"LoRA targets are known for gpt2, gpt_neox (pythia) and llama models, not {t!r}"
        raise SpeccError(msg)
    return t


def target_modules(model: Any, targets: Any) -> list[str]:
    """Module-name suffixes: a targets component's (``all_linear`` when none is given) or a
    list of names."""
    from specc.components import build

    model_type(model)
    if isinstance(targets, list):
        return [str(x) for x in targets]
    return list(build(targets or "all_linear")(model))


def layer_pattern(model: Any, layer: int, module: str) -> str:
    """An anchored pattern for one module of one layer (layer 1 never matches layer 11)."""
    t = model_type(model)
    return rf"{LAYERS[t]}\.{layer}\.{re.escape(module)}"


def n_layers(model: Any) -> int:
    return int(model.config.num_hidden_layers)


@attrs.frozen
class Applying:
    """What a policy's ``apply(model, at)`` receives: the run's optimizer steps and, for the
    circuit-aware policies, the run's data, configuration, directory, device, base circuit (or
    None) and a way to build a subtask's data with the run's vocabulary."""

    steps: int
    data: Any = None
    run: dict[str, Any] = attrs.field(factory=dict)
    path: Any = None
    device: Any = "cpu"
    base_circuit: Any = None
    build_data: Any = None


def apply_policy(model: Any, policy: dict[str, Any], at: Applying | int) -> Any:
    """The model with the policy applied (peft-wrapped for adapter policies)."""
    from specc.components import build

    at = at if isinstance(at, Applying) else Applying(steps=at)
    return build(policy)(model, at)


def random_layer_ranks(layers: int, count: int, other: int, critical: int,
                       seed: int) -> list[int]:
    chosen = set(random.Random(seed).sample(range(layers), min(count, layers)))
    return [critical if i in chosen else other for i in range(layers)]


def layered_lora(model: Any, policy: dict[str, Any], ranks: list[int]) -> Any:
    """LoRA whose rank (and alpha = ratio * rank) is set per layer with anchored patterns."""
    ratio = float(policy.get("alpha_ratio", 2.0))
    modules = target_modules(model, policy.get("targets"))
    rank_pattern, alpha_pattern = {}, {}
    for layer, r in enumerate(ranks):
        for m in modules:
            key = layer_pattern(model, layer, m)
            rank_pattern[key] = r
            alpha_pattern[key] = ratio * r
    base = {"rank": min(ranks), "alpha": ratio * min(ranks), "dropout": 0.0,
            "targets": policy.get("targets")}
    return _lora(model, base, rank_pattern, alpha_pattern)


def _lora(model: Any, policy: dict[str, Any], rank_pattern: dict[str, int],
          alpha_pattern: dict[str, float]) -> Any:
    from peft import LoraConfig, get_peft_model

    r = int(policy["rank"])
    alpha = policy.get("alpha")
    for pat, value in policy.get("rank_pattern") or []:
        rank_pattern[str(pat)] = int(value)
    for pat, value in policy.get("alpha_pattern") or []:
        alpha_pattern[str(pat)] = float(value)
    config = LoraConfig(
        r=r, lora_alpha=float(alpha) if alpha is not None else 2.0 * r,
        lora_dropout=float(policy.get("dropout") or 0.0),
        target_modules=target_modules(model, policy.get("targets")),
        rank_pattern=rank_pattern, alpha_pattern=alpha_pattern,
        fan_in_fan_out=model_type(model) == "gpt2", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _adalora(model: Any, policy: dict[str, Any], total_steps: int) -> Any:
    from peft import AdaLoraConfig, get_peft_model

    tinit, tfinal = int(policy["tinit"]), int(policy["tfinal"])
    if tinit + tfinal >= total_steps:
        # AdaLoRA needs a budgeting phase; keep one of at least a third of training.
        tinit, tfinal = total_steps // 3, total_steps // 3
    config = AdaLoraConfig(
        init_r=int(policy["init_rank"]), target_r=int(policy["target_rank"]),
        lora_alpha=float(policy["alpha"]), tinit=tinit, tfinal=tfinal,
        deltaT=int(policy["delta_t"]), total_step=max(total_steps, 3),
        target_modules=target_modules(model, policy.get("targets")),
        fan_in_fan_out=model_type(model) == "gpt2", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; a padded vocabulary's rows are not counted (Note
    [Padded vocabulary])."""
    from specc.components.models import padding_params

    pad, pad_trained = padding_params(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable - pad_trained, total - pad


# ------------------------------------------------------------------------------------ builders
@component("policy")
def full(*, ctx: BuildContext) -> Any:
    """Fine-tune every parameter."""
    def apply(model: Any, at: Applying) -> Any:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    return apply


@component("policy")
def freeze(*, patterns: list[str], ctx: BuildContext) -> Any:
    """Train everything except modules matching the patterns.

    Args:
        patterns: regular expressions of module names
    """
    pats = [re.compile(p) for p in patterns]

    def apply(model: Any, at: Applying) -> Any:
        for n, p in model.named_parameters():
            p.requires_grad_(not any(r.search(n) for r in pats))
        return model

    return apply


@component("policy")
def lora(
    *,
    rank: Annotated[int, Range(lo=1)] = 8,
    alpha: Annotated[float | None, Range(lo=0, lo_open=True)] = None,
    dropout: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    targets: Targets | list[str] = "all_linear",
    rank_pattern: list[tuple[str, int]] = (),
    alpha_pattern: list[tuple[str, float]] = (),
    ctx: BuildContext,
) -> Any:
    """LoRA adapters through peft.

    Args:
        rank: LoRA rank r
        alpha: scale numerator (none: 2*rank)
        dropout: dropout on the adapter input
        targets: modules that get adapters
        rank_pattern: per-module ranks: [(regex, rank), ...]
        alpha_pattern: per-module alphas: [(regex, alpha), ...]
    """
    cfg = ctx.config
    return lambda model, at: _lora(model, cfg, {}, {})


@component("policy")
def adalora(
    *,
    init_rank: Annotated[int, Range(lo=1)] = 12,
    target_rank: Annotated[int, Range(lo=1)] = 8,
    alpha: Annotated[float, Range(lo=0, lo_open=True)] = 32.0,
    tinit: Annotated[int, Range(lo=0)] = 0,
    tfinal: Annotated[int, Range(lo=0)] = 0,
    delta_t: Annotated[int, Range(lo=1)] = 1,
    targets: Targets | list[str] = "all_linear",
    ctx: BuildContext,
) -> Any:
    """AdaLoRA through peft (budgeted rank allocation).

    Args:
        init_rank: starting rank
        target_rank: average rank after pruning
        alpha: scale numerator
        tinit: steps before budget pruning
        tfinal: steps of final fine-tuning
        delta_t: steps between budget updates
        targets: modules that get adapters
    """
    cfg = ctx.config
    return lambda model, at: _adalora(model, cfg, at.steps)


@component("policy")
def random_layers_lora(
    *,
    count: Annotated[int, Range(lo=1)] = 5,
    rank_other: Annotated[int, Range(lo=1)] = 16,
    rank_critical: Annotated[int, Range(lo=1)] = 64,
    alpha_ratio: Annotated[float, Range(lo=0, lo_open=True)] = 2.0,
    targets: Targets | list[str] = "all_linear",
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Control: critical layers chosen at random.

    Args:
        count: number of random critical layers
        rank_other: rank elsewhere
        rank_critical: rank on chosen layers
        alpha_ratio: alpha = ratio * rank
        targets: modules that get adapters
        seed: random seed
    """
    cfg = ctx.config

    def apply(model: Any, at: Applying) -> Any:
        ranks = random_layer_ranks(n_layers(model), count, rank_other, rank_critical, seed)
        return layered_lora(model, cfg, ranks)

    return apply



@component("targets")
def all_linear(*, ctx: BuildContext) -> Any:
    """Every linear module of every block (LM head excluded)."""
    return lambda model: list(LINEARS[model_type(model)])


@component("targets")
def attention(*, ctx: BuildContext) -> Any:
    """The attention projections."""
    return lambda model: [n for n in LINEARS[model_type(model)] if not n.startswith("mlp")]


@component("targets")
def mlp(*, ctx: BuildContext) -> Any:
    """The MLP projections."""
    return lambda model: [n for n in LINEARS[model_type(model)] if n.startswith("mlp")]



@component("selector")
def top_layers(*, k: Annotated[int, Range(lo=1)] = 5, ctx: BuildContext) -> Any:
    """The k layers with the largest edge change.

    Args:
        k: how many layers
    """
    def pick(sums: list[float]) -> list[int]:
        n = min(k, len(sums))
        return sorted(sorted(range(len(sums)), key=lambda i: -sums[i])[:n])

    return pick


@component("selector")
def above_mean(*, std_mult: Annotated[float, Range(lo=0)] = 1.0, ctx: BuildContext) -> Any:
    """Layers whose change exceeds mean + std_mult * std.

    Args:
        std_mult: standard deviations
    """
    import statistics

    def pick(sums: list[float]) -> list[int]:
        mean = statistics.fmean(sums)
        std = statistics.pstdev(sums)
        return [i for i, s in enumerate(sums) if s > mean + std_mult * std]

    return pick

