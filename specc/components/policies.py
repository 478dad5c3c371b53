"""Policies: which parameters train. Full, freeze by pattern, LoRA and AdaLoRA through peft, and
LoRA with per-layer ranks (the random-layers control)."""

from __future__ import annotations

import random
import re
from typing import Any

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
    """Module-name suffixes for ``all_linear``, ``attention``, ``mlp`` or a list of names."""
    t = model_type(model)
    names = LINEARS[t]
    if isinstance(targets, list):
        return [str(x) for x in targets]
    kind = targets.get("component") if isinstance(targets, dict) else targets
    if kind == "attention":
        return [n for n in names if not n.startswith("mlp")]
    if kind == "mlp":
        return [n for n in names if n.startswith("mlp")]
    return names


def layer_pattern(model: Any, layer: int, module: str) -> str:
    """An anchored pattern for one module of one layer (layer 1 never matches layer 11)."""
    t = model_type(model)
    return rf"{LAYERS[t]}\.{layer}\.{re.escape(module)}"


def n_layers(model: Any) -> int:
    return int(model.config.num_hidden_layers)


def apply_policy(model: Any, policy: dict[str, Any], total_steps: int) -> Any:
    """Return the model with the policy applied (peft-wrapped for adapter policies)."""
    name = policy.get("component")
    if name == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if name == "freeze":
        pats = [re.compile(p) for p in policy["patterns"]]
        for n, p in model.named_parameters():
            p.requires_grad_(not any(r.search(n) for r in pats))
        return model
    if name == "lora":
        return _lora(model, policy, {}, {})
    if name == "adalora":
        return _adalora(model, policy, total_steps)
    if name == "random_layers_lora":
        ranks = random_layer_ranks(n_layers(model), int(policy["count"]),
                                   int(policy["rank_other"]), int(policy["rank_critical"]),
                                   int(policy["seed"]))
        return layered_lora(model, policy, ranks)
    if name == "circuit_lora":
        msg = ("circuit_lora needs circuit discovery (EAP-IG on a probe fine-tune), which this "
               "version of specc does not run yet; use random_layers_lora or lora meanwhile")
        raise SpeccError(msg)
    msg = f"unknown policy {name!r}"
    raise SpeccError(msg)


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
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
