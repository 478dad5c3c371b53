"""Models: Hugging Face causal LMs built from a config, local or cached pretrained models, and
the final checkpoint of another experiment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from specc.diagnostics import SpeccError

# Model kinds are pluggable: each builder takes the resolved config and a vocabulary size and
# returns a torch module. Nothing outside the LM builders assumes a causal LM.
FAMILY = {"gpt2": "causal_lm", "pythia": "causal_lm", "llama": "causal_lm",
          "pretrained": "causal_lm", "checkpoint": "causal_lm"}


def _attn(precision_attention: str) -> str:
    return "eager" if precision_attention == "eager" else "sdpa"


def build_config(cfg: dict[str, Any], vocab_size: int, attention: str = "sdpa",
                 specials: dict[str, int] | None = None) -> Any:
    """The transformers config of a model built from shape parameters."""
    import transformers as tf

    d, layers, heads = int(cfg["width"]), int(cfg["layers"]), int(cfg["heads"])
    if d % heads:
        msg = f"width {d} must be divisible by heads {heads}"
        raise SpeccError(msg)
    ctx, mlp = int(cfg["context"]), int(cfg["width"]) * int(cfg["mlp_ratio"])
    drop = float(cfg["dropout"])
    name = cfg["component"]
    if name == "gpt2":
        conf = tf.GPT2Config(vocab_size=vocab_size, n_positions=ctx, n_embd=d, n_layer=layers,
                             n_head=heads, n_inner=mlp, resid_pdrop=drop, embd_pdrop=drop,
                             attn_pdrop=drop, tie_word_embeddings=True)
    elif name == "pythia":
        conf = tf.GPTNeoXConfig(vocab_size=vocab_size, hidden_size=d, num_hidden_layers=layers,
                                num_attention_heads=heads, intermediate_size=mlp,
                                max_position_embeddings=ctx, rotary_pct=float(cfg["rotary_pct"]),
                                use_parallel_residual=True, hidden_dropout=drop,
                                attention_dropout=drop, tie_word_embeddings=False)
    elif name == "llama":
        kv = cfg.get("kv_heads") or heads
        conf = tf.LlamaConfig(vocab_size=vocab_size, hidden_size=d, num_hidden_layers=layers,
                              num_attention_heads=heads, num_key_value_heads=int(kv),
                              intermediate_size=mlp, max_position_embeddings=ctx,
                              rope_theta=float(cfg["rope_theta"]), attention_dropout=drop,
                              tie_word_embeddings=False)
    else:
        msg = f"{name} is not built from a config"
        raise SpeccError(msg)
    for key, value in (specials or {}).items():
        setattr(conf, f"{key}_token_id", value)
    conf._attn_implementation = attention
    return conf


def build_model(cfg: dict[str, Any], vocab_size: int, *, base: Path, store_root: Path,
                attention: str = "sdpa", seed: int = 0,
                specials: dict[str, int] | None = None) -> Any:
    """A model for a resolved ``model`` configuration; weights initialised from ``seed``."""
    import torch
    import transformers as tf

    quiet_transformers()
    name = cfg["component"]
    if name in ("gpt2", "pythia", "llama"):
        torch.manual_seed(seed)
        conf = build_config(cfg, vocab_size, attention, specials)
        return tf.AutoModelForCausalLM.from_config(conf, attn_implementation=attention)
    if name == "pretrained":
        return load_pretrained(str(cfg["source"]), base, cfg.get("revision"), attention)
    if name == "checkpoint":
        path = checkpoint_dir(cfg, store_root)
        return load_pretrained(str(path), base, None, attention)
    msg = f"unknown model {name!r}"
    raise SpeccError(msg)


VOCAB_FILE = "specc_vocab.json"


def vocab_config(cfg: dict[str, Any], base: Path, store_root: Path) -> dict[str, Any]:
    """The vocabulary a model uses: its own parameter, or the one saved with a trained model
    (``specc_vocab.json``), or the tokenizer stored next to a pretrained model."""
    import json

    if cfg.get("vocab"):
        return dict(cfg["vocab"])
    name = cfg["component"]
    directory: Path | None = None
    if name == "checkpoint":
        directory = checkpoint_dir(cfg, store_root)
    elif name == "pretrained":
        local = Path(cfg["source"])
        local = local if local.is_absolute() else base / local
        directory = local if local.is_dir() else None
    if directory is not None and (directory / VOCAB_FILE).exists():
        return dict(json.loads((directory / VOCAB_FILE).read_text()))
    if directory is not None:
        return {"component": "tokenizer", "path": str(directory)}
    if name == "pretrained":
        return {"component": "hub_tokenizer", "id": str(cfg["source"])}
    return {"component": "bytes"}


def quiet_transformers() -> None:
    """No download or shard-writing progress bars, no config chatter in specc's output."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()


def load_pretrained(source: str, base: Path, revision: str | None, attention: str) -> Any:
    """A local directory, or a hub id read from the local cache only (nothing is downloaded)."""
    import transformers as tf

    local = Path(source) if Path(source).is_absolute() else base / source
    if local.is_dir():
        return tf.AutoModelForCausalLM.from_pretrained(str(local), attn_implementation=attention)
    if source.startswith((".", "/")) or source.count("/") > 1:
        msg = f'model directory "{source}" does not exist (looked for {local})'
        raise SpeccError(msg)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return tf.AutoModelForCausalLM.from_pretrained(
            source, revision=revision, local_files_only=True, attn_implementation=attention)
    except OSError as exc:
        msg = (f'"{source}" is neither a local directory nor a hub id in the local Hugging Face '
               "cache; specc never downloads at run time: download it beforehand "
               "(huggingface-cli download) or give a local path")
        raise SpeccError(msg) from exc


def checkpoint_dir(cfg: dict[str, Any], store_root: Path) -> Path:
    """The final model directory of another experiment's finished run: one of the runs the
    compiler pinned (Note [Pinned checkpoints] in specc/compiler/pipeline.py), so never the
    result of an older definition of that experiment."""
    from specc.store.runs import finished_runs

    exp = cfg["experiment"]["ref"] if isinstance(cfg["experiment"], dict) else cfg["experiment"]
    runs = finished_runs(store_root, exp)
    pinned = cfg.get("runs")
    if pinned is not None:
        runs = [r for r in runs if r.name in set(pinned)]
    if cfg.get("run"):
        runs = [r for r in runs if r.name.startswith(str(cfg["run"]))]
    if not runs:
        msg = (f'experiment "{exp}" has no finished run of its current definition in '
               f"{store_root}; run it first")
        raise SpeccError(msg)
    if len(runs) > 1 and not cfg.get("run"):
        names = ", ".join(r.name for r in runs)
        msg = f'experiment "{exp}" has several finished runs ({names}); choose one with run = "..."'
        raise SpeccError(msg)
    return (runs[0] / "final" / "model").resolve()
