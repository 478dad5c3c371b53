"""Parameter counts from model shapes and policies, without torch (``params(...)`` in specs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import attrs

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
    """Tokens in a vocabulary component (numbers: the range plus 16 specials and operators;
    a tokenizer: read by ``pretrained_shape``'s caller into ``size``, else GPT-2's 50,304)."""
    if isinstance(vocab, ir.Comp):
        if vocab.name == "numbers":
            rng = vocab.arg("values")
            if isinstance(rng, ir.RangeV):
                return rng.hi - rng.lo + 1 + 16
        if vocab.name == "bytes":
            return 256 + 4
        size = vocab.arg("size")  # a tokenizer whose size was read from its directory
        if isinstance(size, ir.Const) and isinstance(size.value, int):
            return size.value
    return 50304


# Note [Shapes of local models]: `params()` and plan costs of `pretrained("dir")` come from the
# directory's config.json (and a `tokenizer("dir")`'s size from its tokenizer.json), read at
# check time without torch. A hub id or a directory without them has an unknown count: said,
# never guessed. The files are small JSON documents of a directory the spec names.
_FAMILIES = {"gpt2": "gpt2", "gpt_neox": "pythia", "llama": "llama", "mistral": "llama",
             "qwen2": "llama"}
_MAX_JSON = 8 << 20


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_JSON:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _local_dir(source: ir.Value | None, base: Path | None) -> Path | None:
    if not (isinstance(source, ir.Const) and isinstance(source.value, str)) or base is None:
        return None
    path = Path(source.value).expanduser()
    path = path if path.is_absolute() else base / path
    return path if path.is_dir() else None


def pretrained_shape(model: ir.Comp, base: Path | None) -> ir.Comp | None:
    """A config-built model component equivalent in shape to a local ``pretrained`` model (for
    counting only), or None when its shape cannot be read."""
    folder = _local_dir(model.arg("source"), base)
    cfg = _read_json(folder / "config.json") if folder is not None else None
    if cfg is None or cfg.get("model_type") not in _FAMILIES:
        return None

    def get(*keys: str, default: int | None = None) -> int | None:
        for k in keys:
            if isinstance(cfg.get(k), int) and not isinstance(cfg.get(k), bool):
                return int(cfg[k])
        return default

    width, heads = get("n_embd", "hidden_size"), get("n_head", "num_attention_heads")
    layers, vocab = get("n_layer", "num_hidden_layers"), get("vocab_size")
    if None in (width, heads, layers, vocab):
        return None
    inner = get("n_inner", "intermediate_size", default=4 * width)  # type: ignore[operator]
    args = {"layers": layers, "heads": heads, "width": width,
            "context": get("n_positions", "max_position_embeddings", default=1024),
            "mlp_ratio": max(1, (inner or 4 * width) // width)}  # type: ignore[operator]
    family = _FAMILIES[cfg["model_type"]]
    if family == "llama":
        args["kv_heads"] = get("num_key_value_heads", default=heads)
    vocab_comp = ir.Comp(name="tokenizer", kind="vocab",
                         args=(ir.ArgV(name="size", value=ir.Const(value=vocab)),))
    return ir.Comp(name=family, kind="model",
                   args=(*(ir.ArgV(name=k, value=ir.Const(value=v)) for k, v in args.items()),
                         ir.ArgV(name="vocab", value=vocab_comp)), span=model.span)


def tokenizer_size(vocab: ir.Comp, base: Path | None) -> int | None:
    """The tokens of a local ``tokenizer("dir")`` (its vocabulary plus added tokens)."""
    folder = _local_dir(vocab.arg("path"), base)
    data = _read_json(folder / "tokenizer.json") if folder is not None else None
    if data is None:
        return None
    table = (data.get("model") or {}).get("vocab") if isinstance(data.get("model"), dict) else None
    if not isinstance(table, (dict, list)):
        return None
    ids = set(table.values()) if isinstance(table, dict) else set(range(len(table)))
    ids |= {t.get("id") for t in data.get("added_tokens") or [] if isinstance(t, dict)}
    return len({i for i in ids if isinstance(i, int)})


def with_local_shapes(model: ir.Comp, base: Path | None) -> ir.Comp | None:
    """``model`` with what local files say filled in: a pretrained model's shape, a tokenizer's
    size. None: a pretrained model whose shape is unknown (Note [Shapes of local models])."""
    if model.name == "pretrained":
        return pretrained_shape(model, base)
    vocab = model.arg("vocab")
    if isinstance(vocab, ir.Comp) and vocab.name == "tokenizer":
        size = tokenizer_size(vocab, base)
        if size is None:
            return model
        sized = attrs.evolve(vocab, args=(*vocab.args,
                                          ir.ArgV(name="size", value=ir.Const(value=size))))
        return attrs.evolve(model, args=tuple(attrs.evolve(a, value=sized) if a.name == "vocab"
                                              else a for a in model.args))
    return model


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
    """Trainable parameters when ``policy`` is applied to ``model`` (None: unknown)."""
    total = model_params(model)
    if total is None:
        return None
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
