"""Note [Memory model]: the bytes a language-model training step needs, for the fit_batch
rewrite (Note [Rewrites]), which picks the fewest micro-batches whose step fits the device.

A step holds a fixed part and a part per row of the micro-batch:

- fixed: the weights (their dtype), the gradients of the trainable ones (fp32), AdamW's two
  moments (fp32), and under chunked_ce one chunk of fp32 logits;
- per row, for each of the model's layers, the activations autograd keeps for backward: a
  coefficient times the width (the residual stream, norms, attention's q, k, v and output) and
  a coefficient times the MLP width (its projections and the activation's intermediates), in
  the autocast dtype; the attention scores (heads x sequence, fp32 softmax) only for eager
  attention, since sdpa keeps none; and without chunked_ce the batch's logits, their fp32
  copy and their gradient.
- with activation checkpointing a layer keeps only its input (one width per token) and one
  layer's activations exist at a time, while it is recomputed.

The coefficients were fitted on CPU fp32 measurements of specc's gpt2, pythia and llama
(benchmarks/bench_memory.py prints the estimate against the measured peak for each shape;
tests/test_rewrites.py checks them within a band). Estimates err on the large side: a
micro-batch one row too small costs a little speed, one row too large a crash.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

GIB = 1 << 30
MARGIN = 0.9  # of the budget a step may plan to use (allocator fragmentation, workspaces)
# per token and layer, in units of (width x activation bytes) and (MLP width x bytes)
WIDTH_COEF = {"gpt2": 10.0, "gpt_neox": 10.0, "llama": 10.0}
MLP_COEF = {"gpt2": 5.5, "gpt_neox": 2.0, "llama": 4.5}
LOGIT_BYTES = 12  # per logit without chunked_ce: the logits, their fp32 softmax, the gradient


@attrs.frozen
class Shape:
    """What the model of a step is, read from a Hugging Face config."""

    family: str  # gpt2, gpt_neox, llama
    layers: int
    width: int
    mlp: int
    heads: int
    vocab: int  # rows of the output layer (padded when pad_vocab applies)
    params: int
    trainable: int
    param_bytes: int  # bytes of one weight (4 for fp32)


def shape_of(model: Any) -> Shape | None:
    """The shape of a Hugging Face causal LM (through peft or DDP wrappers); None for a model
    the memory model does not know."""
    from specc.components.models import _unwrapped

    inner = _unwrapped(model)
    cfg = getattr(inner, "config", None)
    family = getattr(cfg, "model_type", None)
    if family not in WIDTH_COEF:
        return None
    width = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
    mlp = int(getattr(cfg, "n_inner", None) or getattr(cfg, "intermediate_size", 0)
              or 4 * width)
    out = inner.get_output_embeddings()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    first = next(model.parameters())
    return Shape(family=family, layers=int(cfg.num_hidden_layers), width=width, mlp=mlp,
                 heads=int(cfg.num_attention_heads), vocab=int(out.weight.shape[0]),
                 params=params, trainable=trainable, param_bytes=first.element_size())


@attrs.frozen
class Estimate:
    fixed: int  # bytes whatever the micro-batch
    per_row: int  # bytes per row of the micro-batch
    seq: int = 1  # tokens per row
    chunk_tokens: int = 0  # chunked_ce: tokens of its largest chunk
    chunk_per_token: int = 0  # chunked_ce: bytes per token of a chunk (its fp32 logits)

    def at(self, rows: int) -> int:
        chunk = min(self.chunk_tokens, rows * self.seq) * self.chunk_per_token
        return self.fixed + self.per_row * rows + chunk


def estimate(shape: Shape, seq: int, *, act_bytes: int, chunked: bool, eager: bool,
             checkpointing: bool) -> Estimate:
    """The step's bytes for micro-batches of ``seq`` tokens per row."""
    from specc.components.fused import rows_per_chunk

    fixed = shape.params * shape.param_bytes + shape.trainable * (4 + 8)
    layer = act_bytes * (WIDTH_COEF[shape.family] * shape.width
                         + MLP_COEF[shape.family] * shape.mlp)
    if eager:
        layer += shape.heads * seq * (act_bytes + 4)
    if checkpointing:
        per_token = shape.layers * act_bytes * shape.width + layer
    else:
        per_token = shape.layers * layer
    chunk = 0
    if chunked:
        chunk = rows_per_chunk(shape.vocab)  # one chunk's fp32 logits at a time
        per_token += 4 * shape.width  # the fp32 copy of the last hidden states
    else:
        per_token += LOGIT_BYTES * shape.vocab
    return Estimate(fixed=int(fixed), per_row=math.ceil(per_token * seq), seq=seq,
                    chunk_tokens=chunk, chunk_per_token=4 * shape.vocab if chunked else 0)


@attrs.frozen
class Fit:
    accumulate: int
    micro_rows: int
    checkpointing: bool
    estimate_bytes: int
    budget_bytes: int
    fits: bool

    def describe(self) -> str:
        how = (f"accumulate {self.accumulate} (micro-batches of {self.micro_rows} rows)"
               + (", activation checkpointing" if self.checkpointing else ""))
        return (f"{how}: estimated {size(self.estimate_bytes)} of a "
                f"{size(self.budget_bytes)} budget"
                + ("" if self.fits else " (over it even so: the step may run out of memory)"))


def size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"


def fit(rows: int, budget: int, make: Any) -> Fit:
    """The fewest micro-batches of ``rows`` rows (this device's share of the batch) whose step
    fits ``MARGIN`` of ``budget`` bytes; checkpointing only when one row per micro-batch does
    not fit. ``make(checkpointing)`` gives the Estimate."""
    usable = int(budget * MARGIN)
    last = None
    for checkpointing in (False, True):
        est = make(checkpointing)
        for accumulate in range(1, rows + 1):
            micro = math.ceil(rows / accumulate)
            if accumulate > 1 and math.ceil(rows / (accumulate - 1)) == micro:
                continue  # the same micro-batch as fewer steps give
            last = Fit(accumulate, micro, checkpointing, est.at(micro), budget, False)
            if est.at(micro) <= usable:
                return attrs.evolve(last, fits=True)
    assert last is not None
    return last


def estimate_for(trainer: Any, model: Any, checkpointing: bool) -> Estimate | None:
    """The Estimate of a Trainer's step (None: a model the memory model does not know)."""
    shape = shape_of(model)
    if shape is None or trainer.generic:
        return None
    seq = trainer.data.longest()  # the worst batch: padded to the longest sequence
    act_bytes = 2 if trainer.rt.precision in ("bf16", "fp16") else 4
    return estimate(shape, int(seq), act_bytes=act_bytes,
                    chunked="chunked_ce" in trainer.rewrites,
                    eager=trainer.rt.attention() == "eager", checkpointing=checkpointing)


def accumulation(trainer: Any, model: Any) -> int:
    """train.accumulate, or under fit_batch the micro-batches chosen for this device (and
    activation checkpointing switched on when needed); the choice goes to ``trainer.at_run``,
    which the run's manifest records."""
    asked = trainer.train.get("accumulate", "auto")
    if asked != "auto":
        return int(asked)
    budget = getattr(trainer.rt, "memory_budget", None)
    if "fit_batch" not in trainer.rewrites or budget is None:
        return 1
    if estimate_for(trainer, model, False) is None:
        trainer.at_run["fit_batch"] = "skipped: no memory model for this model (accumulate 1)"
        return 1
    rows = math.ceil(int(trainer.train["batch"]) / trainer.rt.world)
    chosen = fit(rows, budget(), lambda ck: estimate_for(trainer, model, ck))
    if chosen.checkpointing:
        from specc.components.models import _unwrapped

        _unwrapped(model).gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer.at_run["fit_batch"] = chosen.describe()
    trainer.at_run["memory"] = {"estimate_gib": round(chosen.estimate_bytes / GIB, 4),
                                "budget_gib": round(chosen.budget_bytes / GIB, 4)}
    return chosen.accumulate
