"""Note [Rewrites]: what the compiler changes in a run for speed and memory, keeping the
mathematics (the losses and metrics equal the plain run's within floating-point order).

- ``pad_vocab``: the embedding and output rows of a language model built from a config are
  padded to a multiple of 64 (the tile matrix units and vector lanes want); the padded logits are
  cut off the model's output, so they never receive probability mass, and the saved model has
  its real vocabulary again.
- ``chunked_ce``: next-token cross-entropy computed from the last hidden states and the output
  weight in chunks of rows, with the gradient formed chunk by chunk, so the batch's logits
  (batch x context x vocabulary) never exist at once (the memory of a step's largest tensor).

- ``fit_batch``: with ``train.accumulate = auto``, the run picks the fewest micro-batches whose
  step fits the device's memory (``train.memory``, else what is free), by the memory model of
  specc/runtime/memory.py; activation checkpointing only when one row per micro-batch does not
  fit. The loss is token-normalized over micro-batches (Note [Loss normalization]), so the
  update is the declared batch's. Decided at run time (the device is known then); the run's
  manifest records the choice, the estimate and, on CUDA, the measured peak.
- ``compile``: with ``train.compile = auto``, torch.compile wraps the model when the run is on
  CUDA, with a shape policy of a few fixed lengths (``buckets``) for data of varying length, so
  it does not recompile per batch; skipped on CPU (compiling costs more than it saves on a short
  CPU run; ``train.compile = true`` forces it) and on XLA (the whole step is already one graph).

``train.rewrites = auto`` applies every rewrite that applies, ``none`` none (the baseline of
every benchmark), a list only those. Each run's configuration records the ones applied
(``train.rewrites``), so its hash does; ``specc explain SPEC train.rewrites`` says which, why and
the expected effect, and why the others are skipped.
"""

from __future__ import annotations

from typing import Any

import attrs

from specc.catalogue.schema import REWRITES
from specc.components.models import PAD, padded

CONFIG_MODELS = ("gpt2", "pythia", "llama")  # language models built from a config


@attrs.frozen
class Decision:
    name: str
    applied: bool
    why: str


def decide(config: dict[str, Any]) -> list[Decision]:
    """Each rewrite's decision for a run's resolved configuration."""
    train = config.get("train") or {}
    asked = train.get("rewrites", "auto")  # none: no rewrite (a missing key: auto)
    wanted = set(REWRITES) if asked == "auto" else set(asked or ())
    out = []
    for name, (applies, why) in (("pad_vocab", _pad_vocab(config)),
                                 ("chunked_ce", _chunked_ce(config)),
                                 ("fit_batch", _fit_batch(config)),
                                 ("compile", _compile(config))):
        if name not in wanted:
            out.append(Decision(name, False, f"not asked (train.rewrites = {_shown(asked)})"))
        else:
            out.append(Decision(name, applies, why))
    return out


def applied(config: dict[str, Any]) -> list[str]:
    return [d.name for d in decide(config) if d.applied]


def _shown(asked: Any) -> str:
    if asked is None:
        return "none"
    return asked if isinstance(asked, str) else "[" + ", ".join(asked) + "]"


def _model(config: dict[str, Any]) -> dict[str, Any]:
    model = config.get("model")
    return model if isinstance(model, dict) else {}


def _vocab_size(model: dict[str, Any]) -> int | None:
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        return None
    if vocab.get("component") == "numbers":
        lo, hi = (vocab.get("values") or {}).get("range", (0, -1))
        return int(hi) - int(lo) + 1 + 16
    if vocab.get("component") == "bytes":
        return 256 + 4
    return None


def _pad_vocab(config: dict[str, Any]) -> tuple[bool, str]:
    model = _model(config)
    if "python" in model or model.get("component") not in CONFIG_MODELS:
        return False, ("skipped: only a language model built from a config (gpt2, pythia, "
                       "llama) is padded; a loaded or user model keeps its shapes")
    size = _vocab_size(model)
    if size is not None and size % PAD == 0:
        return False, f"skipped: the vocabulary ({size}) is already a multiple of {PAD}"
    shown = f"{size:,} -> {padded(size):,}" if size is not None else \
        f"the tokenizer's size, rounded up to a multiple of {PAD}"
    return True, (f"vocabulary padded to a multiple of {PAD} ({shown}): matrix tiles of the "
                  "output layer are full; the padded logits are cut off, so no loss or metric "
                  "changes")


def _chunked_ce(config: dict[str, Any]) -> tuple[bool, str]:
    model = _model(config)
    objective = config.get("objective")
    name = objective.get("component") if isinstance(objective, dict) else None
    if "python" in model or model.get("component") not in (*CONFIG_MODELS, "pretrained",
                                                           "checkpoint"):
        return False, "skipped: only specc's language models are trained with next_token here"
    if name not in (None, "next_token"):
        return False, f"skipped: the objective is {name}, not next_token"
    if config.get("backend") == "xla":
        return False, ("skipped on XLA: the whole step is one compiled graph, and chunks would "
                       "be unrolled into it")
    policy = config.get("policy") or {}
    targets = policy.get("targets") if isinstance(policy, dict) else None
    if isinstance(targets, list) and any("lm_head" in str(t) or "embed_out" in str(t)
                                         for t in targets):
        return False, "skipped: the policy adapts the output layer"
    size = _vocab_size(model)
    effect = (f" (a batch x context x {padded(size) if size else 'vocabulary'} logits tensor "
              "and its gradient)")
    return True, ("next-token cross-entropy in chunks of rows from the last hidden states "
                  "(torch's chunked linear_cross_entropy, torch >= 2.13, else the plain loss; "
                  "Liger's fused kernel on CUDA with the fused extra): the batch's logits never "
                  "exist at once" + effect)


def _fit_batch(config: dict[str, Any]) -> tuple[bool, str]:
    train = config.get("train") or {}
    accumulate = train.get("accumulate", "auto")
    if accumulate != "auto":
        return False, f"skipped: train.accumulate = {accumulate} is given"
    model = _model(config)
    if "python" in model or model.get("component") not in (*CONFIG_MODELS, "pretrained",
                                                           "checkpoint"):
        return False, ("skipped: the memory model knows specc's language models, not a user's "
                       "model (give train.accumulate; accumulate = 1 meanwhile)")
    if config.get("backend") == "xla":
        return False, ("skipped on XLA: the step compiles for one micro-batch shape (give "
                       "train.accumulate; accumulate = 1 meanwhile)")
    budget = train.get("memory")
    where = f"{budget:g} GiB (train.memory)" if budget else "the device's free memory"
    return True, (f"micro-batches chosen at run time so the step fits {where}, the declared "
                  f"batch of {train.get('batch', 32)} kept exact by token-normalized "
                  "accumulation; activation checkpointing only if one row per micro-batch "
                  "does not fit (the run's manifest records the choice)")


def _compile(config: dict[str, Any]) -> tuple[bool, str]:
    compile_ = (config.get("train") or {}).get("compile", "auto")
    if compile_ is not None and compile_ != "auto":
        return False, (f"not a rewrite: train.compile = {str(compile_).lower()} is given "
                       "(compiled as asked)" if compile_ else
                       "skipped: train.compile = false is given")
    backend = config.get("backend") or "auto"
    if backend == "cpu":
        return False, ("skipped on CPU: compiling costs more than it saves on a short CPU run "
                       "(train.compile = true forces it)")
    if backend == "xla":
        return False, "skipped on XLA: the whole step is already one compiled graph"
    return True, ("torch.compile of the model when the run is on CUDA (decided at run time: "
                  "skipped on a CPU), with fixed sequence lengths (buckets) for data of varying "
                  "length so shapes do not recompile; fused AdamW and TF32/bf16 as always on "
                  "CUDA")
