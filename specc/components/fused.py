"""The chunked_ce rewrite (Note [Rewrites]): next-token cross-entropy from a causal LM's last
hidden states and its output weight, so the (rows x vocabulary) logits of the whole batch, and
their gradient, never exist: the memory of the largest tensors of a language-model step becomes
that of one chunk.

The kernel is a library's, never ours:
- ``torch.nn.functional.linear_cross_entropy`` with its chunked path (torch >= 2.13), in chunks
  of ``rows_per_chunk`` rows (about 32 MB of fp32 logits; torch's own ``auto`` choice on CUDA);
- on CUDA, Liger kernel's fused Triton kernel when the ``fused`` extra is installed
  (``pip install 'specc-exp[fused]'``).

The sum over rows and the gradient equal the plain ``F.cross_entropy(..., reduction="sum")``
over the full logits up to floating-point order (tests/test_rewrites.py). A padded vocabulary
(Note [Padded vocabulary]) takes only the real rows of the weight.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from specc.api import Loss

CHUNK_BYTES = 32 << 20  # fp32 logits of one chunk


def rows_per_chunk(vocab: int) -> int:
    return max(16, CHUNK_BYTES // (4 * max(vocab, 1)))


def kernel(device: str) -> str:
    """Which kernel runs the rewrite on a device type: ``liger`` (CUDA, the extra installed)
    or ``torch`` (the chunked path of torch's own op)."""
    if device == "cuda" and importlib.util.find_spec("liger_kernel") is not None:
        return "liger"
    return "torch"


def chunked_next_token(model: Any, batch: dict[str, Any]) -> Loss:
    """next_token without the batch's logits: the model runs with ``logits_to_keep=1`` and
    returns its last hidden states; the loss comes from them and the output weight."""
    from specc.components.models import _unwrapped

    out = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                output_hidden_states=True, logits_to_keep=1)
    hidden, labels = out.hidden_states[-1], batch["labels"]
    if not batch.get("shifted"):
        hidden, labels = hidden[:, :-1], labels[:, 1:]
    inner = _unwrapped(model)
    weight = inner.get_output_embeddings().weight
    size = int(getattr(inner, "real_vocab", weight.shape[0]))
    flat = hidden.reshape(-1, hidden.shape[-1])
    total = linear_cross_entropy(flat, weight, labels.reshape(-1), size)
    return Loss(total, (labels != -100).sum())


def linear_cross_entropy(hidden: Any, weight: Any, labels: Any, size: int,
                         rows: int | None = None) -> Any:
    """sum over rows of cross_entropy(hidden @ weight[:size].T, labels), ignoring -100."""
    import torch
    import torch.nn.functional as F

    w = weight[:size]
    if kernel(hidden.device.type) == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        return LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="sum")(
            w, hidden, labels)
    if hidden.device.type == "cuda" and rows is None:
        options = torch.nn.LinearCrossEntropyOptions()  # torch's measured choice for CUDA
    else:
        options = torch.nn.LinearCrossEntropyOptions(
            batch_chunk_size=rows or rows_per_chunk(size), chunking_method=None)
    # torch's op returns the loss in its input's dtype: a bf16 sum over a batch's tokens would
    # be rounded to 3 digits, so the chunks run in fp32 (TF32 on CUDA), as the plain
    # next_token's cross-entropy does under autocast
    dtype = torch.promote_types(hidden.dtype, torch.float32)
    with torch.autocast(hidden.device.type, enabled=False):
        return F.linear_cross_entropy(hidden.to(dtype), w.to(dtype), labels, reduction="sum",
                                      ignore_index=-100, options=options)
