"""Parameter counts from model shapes and policies, without torch (``params(...)`` in specs)."""

from __future__ import annotations

from typing import Final

from specc.compiler import ir

# Note [Linear modules per block]: the linear modules of one block, as (name, in, out) in units
# of the width d (and of the MLP width m for the MLP), per model family. LoRA on a module of
# shape in x out adds r * (in + out) parameters; the LM head is never a target.


def _gpt2_linears(d: int, m: int) -> list[tuple[str, int, int]]:
    return [("attn.c_attn", d, 3 * d), ("attn.c_proj", d, d), ("mlp.c_fc", d, m),
            ("mlp.c_proj", m, d)]


def _pythia_linears(d: int, m: int) -> list[tuple[str, int, int]]:
    return [("attention.query_key_value", d, 3 * d), ("attention.dense", d, d),
            ("mlp.dense_h_to_4h", d, m), ("mlp.dense_4h_to_h", m, d)]


def _llama_linears(d: int, m: int, kv: int) -> list[tuple[str, int, int]]:
    return [("self_attn.q_proj", d, d), ("self_attn.k_proj", d, kv), ("self_attn.v_proj", d, kv),
            ("self_attn.o_proj", d, d), ("mlp.gate_proj", d, m), ("mlp.up_proj", d, m),
            ("mlp.down_proj", m, d)]


ATTENTION: Final = ("c_attn", "attn.c_proj", "query_key_value", "attention.dense", "q_proj",
                    "k_proj", "v_proj", "o_proj")


def vocab_size(vocab: ir.Value | None) -> int:
    """Tokens in a vocabulary component (numbers: the range plus 16 specials and operators)."""
    if isinstance(vocab, ir.Comp):
        if vocab.name == "numbers":
            rng = vocab.arg("values")
            if isinstance(rng, ir.RangeV):
                return rng.hi - rng.lo + 1 + 16
        if vocab.name == "bytes":
            return 256 + 4
    return 50304


def _int(comp: ir.Comp, name: str, default: int = 0) -> int:
    v = comp.arg(name)
    if isinstance(v, ir.Const) and isinstance(v.value, (int, float)):
        return int(v.value)
    return default


def shape(model: ir.Comp) -> dict[str, int]:
    """The integer shape of a model component: layers, width, mlp width, heads, kv width, vocab."""
    d = _int(model, "width", 768)
    heads = max(1, _int(model, "heads", 12))
    kv_heads = _int(model, "kv_heads", heads) or heads
    return {
        "layers": _int(model, "layers", 12),
        "width": d,
        "mlp": d * _int(model, "mlp_ratio", 4),
        "heads": heads,
        "kv": d // heads * kv_heads,
        "vocab": vocab_size(model.arg("vocab")),
        "context": _int(model, "context", 1024),
    }


def linears(model: ir.Comp) -> list[tuple[str, int, int]]:
    """The linear modules of one block of ``model``: (name, in features, out features)."""
    s = shape(model)
    if model.name == "gpt2":
        return _gpt2_linears(s["width"], s["mlp"])
    if model.name == "llama":
        return _llama_linears(s["width"], s["mlp"], s["kv"])
    return _pythia_linears(s["width"], s["mlp"])


def model_params(model: ir.Comp) -> int | None:
    """Total parameters of a model built from a config; None when the shape is not known."""
    if model.name not in ("gpt2", "pythia", "llama"):
        return None
    s = shape(model)
    d, layers, vocab = s["width"], s["layers"], s["vocab"]
    per_layer = sum(i * o + (o if model.name != "llama" else 0) for _, i, o in linears(model))
    if model.name == "llama":
        norms = 2 * d
        return vocab * d * 2 + layers * (per_layer + norms) + d
    norms = 4 * d  # two layer norms, weight and bias
    if model.name == "gpt2":  # learned positions, tied head
        return vocab * d + s["context"] * d + layers * (per_layer + norms) + 2 * d
    return vocab * d * 2 + layers * (per_layer + norms) + 2 * d  # pythia: untied head


def non_embedding_params(model: ir.Comp) -> int | None:
    """Parameters outside the token and position embeddings and the LM head (the N of
    scaling laws and of Chinchilla's 20 tokens per parameter)."""
    total = model_params(model)
    if total is None:
        return None
    s = shape(model)
    embed = s["vocab"] * s["width"]
    if model.name == "gpt2":
        return total - embed - s["context"] * s["width"]
    return total - 2 * embed


def _targets_match(module: str, targets: ir.Value | None) -> bool:
    if isinstance(targets, ir.Comp):
        if targets.name == "attention":
            return any(module.endswith(a) for a in ATTENTION)
        if targets.name == "mlp":
            return not any(module.endswith(a) for a in ATTENTION)
        return True
    if isinstance(targets, ir.ListV):
        names = [t.value for t in targets.items if isinstance(t, ir.Const)]
        return any(str(n) in module for n in names)
    return True


def layer_ranks(policy: ir.Comp, layers: int) -> list[int] | None:
    """The LoRA rank of each layer a policy gives (None: not a LoRA-family policy)."""
    name = policy.name
    if name == "lora":
        return [_int(policy, "rank", 8)] * layers
    if name == "adalora":
        return [_int(policy, "init_rank", 12)] * layers
    if name in ("circuit_lora", "random_layers_lora"):
        other, crit = _int(policy, "rank_other", 16), _int(policy, "rank_critical", 64)
        if name == "random_layers_lora":
            count = _int(policy, "count", 5)
        else:
            sel = policy.arg("critical")
            count = _int(sel, "k", 5) if isinstance(sel, ir.Comp) else 5
        count = min(count, layers)
        return [crit] * count + [other] * (layers - count)
    return None


def policy_params(policy: ir.Comp, model: ir.Comp) -> int | None:
    """Trainable parameters when ``policy`` is applied to ``model``."""
    total = model_params(model)
    if policy.name == "full":
        return total
    if policy.name == "freeze":
        return None
    ranks = layer_ranks(policy, shape(model)["layers"])
    if ranks is None:
        return None
    targets = policy.arg("targets")
    per_rank = sum(i + o for n, i, o in linears(model) if _targets_match(n, targets))
    return sum(r * per_rank for r in ranks)
