"""Models: Hugging Face causal LMs built from a config, local or cached pretrained models, and
the final checkpoint of another experiment. Each is a ``specc.api`` builder (its signature is
its catalogue entry); the loop calls it with the run's vocabulary, seed, attention
implementation and store in ``ctx``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import attrs

from specc.api import BuildContext, Experiment, Fraction, Range, Vocab, component
from specc.diagnostics import SpeccError


@component("model", provides=("causal_lm",))
def gpt2(
    *,
    layers: Annotated[int, Range(lo=1)] = 12,
    heads: Annotated[int, Range(lo=1)] = 12,
    width: Annotated[int, Range(lo=1)] = 768,
    context: Annotated[int, Range(lo=1)] = 1024,
    vocab: Vocab,
    mlp_ratio: Annotated[int, Range(lo=1)] = 4,
    dropout: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    ctx: BuildContext,
) -> Any:
    """GPT-2-like causal LM (sequential attention then MLP), built from a config.

    Args:
        layers: number of transformer blocks
        heads: attention heads per block
        width: hidden size (d_model); must divide by heads
        context: maximum sequence length
        vocab: the vocabulary: numbers(0..199), bytes or tokenizer(path)
        mlp_ratio: MLP hidden size as a multiple of width
        dropout: dropout probability
    """
    import transformers as tf

    _divides(width, heads)
    return _from_config(tf.GPT2Config(
        **_specials(ctx), vocab_size=ctx.vocab.size, n_positions=context, n_embd=width,
        n_layer=layers, n_head=heads, n_inner=width * mlp_ratio, resid_pdrop=dropout,
        embd_pdrop=dropout, attn_pdrop=dropout, tie_word_embeddings=True), ctx)


@component("model", provides=("causal_lm",))
def pythia(
    *,
    layers: Annotated[int, Range(lo=1)] = 12,
    heads: Annotated[int, Range(lo=1)] = 12,
    width: Annotated[int, Range(lo=1)] = 768,
    context: Annotated[int, Range(lo=1)] = 1024,
    vocab: Vocab,
    mlp_ratio: Annotated[int, Range(lo=1)] = 4,
    dropout: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    rotary_pct: Annotated[Fraction, Range(lo=0, hi=1)] = "25%",
    ctx: BuildContext,
) -> Any:
    """GPT-NeoX/Pythia-like causal LM (parallel attention and MLP, rotary).

    Args:
        layers: number of transformer blocks
        heads: attention heads per block
        width: hidden size (d_model); must divide by heads
        context: maximum sequence length
        vocab: the vocabulary: numbers(0..199), bytes or tokenizer(path)
        mlp_ratio: MLP hidden size as a multiple of width
        dropout: dropout probability
        rotary_pct: share of head dims with rotary embeddings
    """
    import transformers as tf

    _divides(width, heads)
    return _from_config(tf.GPTNeoXConfig(
        **_specials(ctx), vocab_size=ctx.vocab.size, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=width * mlp_ratio,
        max_position_embeddings=context, rotary_pct=float(rotary_pct),
        use_parallel_residual=True, hidden_dropout=dropout, attention_dropout=dropout,
        tie_word_embeddings=False), ctx)


@component("model", provides=("causal_lm",))
def llama(
    *,
    layers: Annotated[int, Range(lo=1)] = 12,
    heads: Annotated[int, Range(lo=1)] = 12,
    width: Annotated[int, Range(lo=1)] = 768,
    context: Annotated[int, Range(lo=1)] = 1024,
    vocab: Vocab,
    mlp_ratio: Annotated[int, Range(lo=1)] = 4,
    dropout: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    kv_heads: Annotated[int | None, Range(lo=1)] = None,
    rope_theta: Annotated[float, Range(lo=0, lo_open=True)] = 10000.0,
    ctx: BuildContext,
) -> Any:
    """Llama-like causal LM (RMSNorm, SwiGLU, rotary, grouped KV).

    Args:
        layers: number of transformer blocks
        heads: attention heads per block
        width: hidden size (d_model); must divide by heads
        context: maximum sequence length
        vocab: the vocabulary: numbers(0..199), bytes or tokenizer(path)
        mlp_ratio: MLP hidden size as a multiple of width
        dropout: dropout probability
        kv_heads: key/value heads (none: same as heads)
        rope_theta: rotary base
    """
    import transformers as tf

    _divides(width, heads)
    return _from_config(tf.LlamaConfig(
        **_specials(ctx), vocab_size=ctx.vocab.size, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=int(kv_heads or heads),
        intermediate_size=width * mlp_ratio, max_position_embeddings=context,
        rope_theta=float(rope_theta), attention_dropout=dropout, tie_word_embeddings=False), ctx)


@component("model", provides=("causal_lm",))
def pretrained(*, source: str, revision: str | None = None, ctx: BuildContext) -> Any:
    """A Hugging Face model from a local directory or a hub id (read from the local cache, never
    downloaded at run time).

    Args:
        source: a local directory or a hub id
        revision: hub revision
    """
    quiet_transformers()
    return load_pretrained(source, ctx.base, revision, ctx.attention)


@component("model", provides=("causal_lm",))
def checkpoint(*, experiment: Experiment, run: str | None = None, ctx: BuildContext) -> Any:
    """The final checkpoint of another experiment's run.

    Args:
        experiment: the experiment that trains it
        run: a run hash (none: the experiment's only run)
    """
    quiet_transformers()
    return load_pretrained(str(checkpoint_dir(ctx.config, _store(ctx))), ctx.base, None,
                           ctx.attention)


def _store(ctx: BuildContext) -> Path:
    if ctx.store is None:
        raise SpeccError("checkpoint(...) needs the run store, and none was given")
    return ctx.store


def _divides(width: int, heads: int) -> None:
    if width % heads:
        msg = f"width {width} must be divisible by heads {heads}"
        raise SpeccError(msg)


def _specials(ctx: BuildContext) -> dict[str, Any]:
    """The vocabulary's special tokens, given to the config (which checks them)."""
    return {f"{key}_token_id": getattr(ctx.vocab, key) for key in ("bos", "eos", "pad")}


def _from_config(conf: Any, ctx: BuildContext) -> Any:
    """A causal LM from its transformers config: the run's attention implementation, weights
    initialised from the run's seed."""
    import torch
    import transformers as tf

    quiet_transformers()
    conf._attn_implementation = ctx.attention
    torch.manual_seed(ctx.seed)
    model = tf.AutoModelForCausalLM.from_config(conf, attn_implementation=ctx.attention)
    if "pad_vocab" in ctx.rewrites:
        pad_vocab(model)
    return model


# Note [Padded vocabulary] (the pad_vocab rewrite, Note [Rewrites]): the model is built with its
# real vocabulary, then its embedding and output rows are padded (the random state restored, so
# the real rows and everything drawn after are those of the unpadded model); a hook cuts the
# padded logits off the output layer, so no loss, metric or generated token ever sees them.
# `real_vocab` is the size; the saved model is unpadded (`unpadded`).
PAD = 64


def padded(size: int) -> int:
    """``size`` rounded up to a multiple of PAD."""
    return -(-size // PAD) * PAD


def pad_vocab(model: Any) -> None:
    import torch

    size = int(model.get_output_embeddings().weight.shape[0])
    if padded(size) == size:
        return
    state = torch.random.get_rng_state()
    model.resize_token_embeddings(padded(size), mean_resizing=False)
    torch.random.set_rng_state(state)
    model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: out[..., :size])
    model.real_vocab = size


def padding_params(model: Any) -> tuple[int, int]:
    """Parameters the padded vocabulary added, all and trainable (0 without the rewrite):
    parameter counts leave them out."""
    inner = _unwrapped(model)
    size = getattr(inner, "real_vocab", None)
    if size is None:
        return 0, 0
    total = trained = 0
    seen: set[int] = set()
    for m in (inner.get_input_embeddings(), inner.get_output_embeddings()):
        w = m.weight
        if id(w) not in seen:
            seen.add(id(w))
            n = (w.shape[0] - size) * w.shape[1]
            total += n
            trained += n if w.requires_grad else 0
    return int(total), int(trained)


def unpadded(model: Any) -> Any:
    """The model with its real vocabulary (a copy when it was padded), for saving."""
    import copy

    inner = _unwrapped(model)
    size = getattr(inner, "real_vocab", None)
    if size is None:
        return model
    out = copy.deepcopy(inner)
    out.get_output_embeddings()._forward_hooks.clear()
    out.resize_token_embeddings(size, mean_resizing=False)
    del out.real_vocab
    return out


def set_special_tokens(model: Any, vocab: Any) -> None:
    """The vocabulary's pad, bos and eos ids in the model's config and generation config, so
    ``generate`` and transformers' pipelines stop at eos and pad with pad."""
    for cfg in (model.config, model.generation_config):
        cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id = vocab.pad, vocab.bos, vocab.eos


def _unwrapped(model: Any) -> Any:
    """The Hugging Face model inside a peft or data-parallel wrapper."""
    while True:
        if hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
            model = model.module
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            return model


def build_model(cfg: dict[str, Any], vocab: Any, *, base: Path = Path("."),
                store_root: Path | None = None, attention: str = "sdpa", seed: int = 0) -> Any:
    """A language model for a resolved ``model`` configuration: its builder, called with the
    vocabulary (or a bare vocabulary size: no special tokens), the attention implementation
    and the seed its weights are initialised from (what the loop passes)."""
    from specc.components import build

    if isinstance(vocab, int):
        vocab = _Size(vocab)
    return build(cfg, BuildContext(seed=seed, base=base, vocab=vocab, store=store_root,
                                   attention=attention))


@attrs.frozen
class _Size:
    size: int
    bos: None = None
    eos: None = None
    pad: None = None


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
    if name == "pretrained":  # a hub id: its tokenizer from the local cache
        return {"component": "tokenizer", "path": str(cfg["source"])}
    return {"component": "bytes"}


def quiet_transformers() -> None:
    """No download or shard-writing progress bars, no config chatter in specc's output."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()


def offline() -> None:
    """Note [Offline]: specc never downloads at run time. The Hugging Face libraries read
    their offline switches when first imported, so the switches are set in the environment
    and, for a library already imported (an embedding program, an earlier component), in its
    constants too: a missing model or dataset fails at once instead of retrying the network."""
    import sys

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[name] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_DATASETS_OFFLINE = True
        datasets_config.HF_HUB_OFFLINE = True


def load_pretrained(source: str, base: Path, revision: str | None, attention: str) -> Any:
    """A local directory, or a hub id read from the local cache only (nothing is downloaded)."""
    offline()
    import transformers as tf

    local = Path(source) if Path(source).is_absolute() else base / source
    if local.is_dir():
        return tf.AutoModelForCausalLM.from_pretrained(str(local), attn_implementation=attention)
    if source.startswith((".", "/")) or source.count("/") > 1:
        msg = f'model directory "{source}" does not exist (looked for {local})'
        raise SpeccError(msg)
    try:
        return tf.AutoModelForCausalLM.from_pretrained(
            source, revision=revision, local_files_only=True, attn_implementation=attention)
    except OSError as exc:
        msg = (f'"{source}" is neither a local directory nor a hub id in the local Hugging Face '
               f"cache; specc never downloads at run time: download it beforehand "
               f"(hf download {source}) or give a local path")
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
