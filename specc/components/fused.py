"""The chunked_ce rewrite (Note [Rewrites]): next-token cross-entropy from a causal LM's last
hidden states and its output weight, a chunk of rows at a time, with the gradient formed in the
same pass, so the (rows x vocabulary) logits of the whole batch never exist: the memory of the
largest tensor of a language-model step, and of its gradient, becomes that of one chunk.

The sum over rows and the gradient equal the plain ``F.cross_entropy(..., reduction="sum")``
over the full logits up to floating-point order (tests/test_rewrites.py). A padded vocabulary
(Note [Padded vocabulary]) takes only the real rows of the weight.
"""

from __future__ import annotations

from typing import Any

from specc.api import Loss

CHUNK_BYTES = 32 << 20  # fp32 logits of one chunk


def rows_per_chunk(vocab: int) -> int:
    return max(16, CHUNK_BYTES // (4 * max(vocab, 1)))


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
    return _Chunked.apply(hidden, weight, labels, size, rows or rows_per_chunk(size))


def _function() -> Any:
    import torch

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, labels: Any, size: int,
                    rows: int) -> Any:
            w = weight[:size]
            total = torch.zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32),
                                device=hidden.device)
            grad_h = torch.zeros_like(hidden)
            grad_w = torch.zeros_like(weight)
            for i in range(0, hidden.shape[0], rows):
                h, y = hidden[i:i + rows], labels[i:i + rows]
                ok = (y != -100)
                y = y.clamp(min=0)
                logits = (h @ w.t()).to(torch.promote_types(h.dtype, torch.float32))
                lse = torch.logsumexp(logits, dim=-1)
                picked = logits.gather(1, y[:, None])[:, 0]
                total = total + ((lse - picked) * ok).sum()
                # d loss / d logits = softmax - onehot, on the rows that count
                p = torch.exp(logits - lse[:, None])
                p[torch.arange(p.shape[0], device=p.device), y] -= 1.0
                p = (p * ok[:, None]).to(h.dtype)
                grad_h[i:i + rows] = p @ w
                grad_w[:size] += p.t() @ h
            ctx.save_for_backward(grad_h, grad_w)
            return total

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad_h, grad_w = ctx.saved_tensors
            return grad_h * grad.to(grad_h.dtype), grad_w * grad.to(grad_w.dtype), None, None, \
                None

    return Chunked


class _Lazy:
    """torch is imported when the rewrite first runs (check never imports this module's torch)."""

    fn: Any = None

    def apply(self, *args: Any) -> Any:
        if _Lazy.fn is None:
            _Lazy.fn = _function()
        return _Lazy.fn.apply(*args)


_Chunked = _Lazy()
