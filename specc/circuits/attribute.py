"""Edge scores: EAP, EAP-IG (interpolated input embeddings) and exact per-edge patching.

Formulas follow ../shared/research/seed1_circuit_lora.md §1.3-1.4: s(u→v) is summed over batch
items, positions and d_model, divided by the number of examples; the KL metric is the paper's
KL(p_clean ‖ p) / |V| at the last prompt token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from specc.circuits.forward import CircuitModel

Pair = tuple[list[int], list[int], int]  # clean ids, corrupted ids, the clean answer's token


def metric_fn(metric: str | dict[str, Any]) -> Callable[..., Any]:
    """The per-example metric on last-token logits a circuit_metric component builds
    (specc/components/circuits.py)."""
    from specc.components import build

    return build(metric)  # type: ignore[no-any-return]


def batches(pairs: Sequence[Pair], size: int) -> list[tuple[Any, Any, Any]]:
    """Pairs grouped by prompt length (no padding, so the last position is the last token)."""
    import torch

    by_len: dict[int, list[Pair]] = {}
    for p in pairs:
        by_len.setdefault(len(p[0]), []).append(p)
    out = []
    for group in by_len.values():
        for i in range(0, len(group), size):
            chunk = group[i: i + size]
            out.append((torch.tensor([c for c, _, _ in chunk]),
                        torch.tensor([k for _, k, _ in chunk]),
                        torch.tensor([a for _, _, a in chunk])))
    return out


def step_boundary(device: Any) -> None:
    """On an XLA device, cut the lazily traced graph here (one small graph per batch, compiled
    once per shape); elsewhere nothing: eager devices run each op as it comes."""
    if getattr(device, "type", None) == "xla":
        import torch_xla

        torch_xla.sync()


class Attributor:
    """Scores every edge of a model's graph on clean/corrupted pairs."""

    def __init__(self, model: Any, pairs: Sequence[Pair], metric: str = "kl_last_token",
                 batch: int = 32, device: Any = None) -> None:
        import torch

        self.cm = CircuitModel(model)
        self.metric = metric_fn(metric)
        self.device = device or next(model.parameters()).device
        self.batches = [tuple(t.to(self.device) for t in b) for b in batches(pairs, batch)]
        self.n = sum(len(b[0]) for b in self.batches)
        self.mask = self.cm.graph.upstream().to(self.device)
        self.torch = torch
        # Probes live in the model's dtype (pretrained checkpoints are often fp16 or bf16);
        # scores and metrics accumulate in at least fp32, and in fp64 for an fp64 model.
        self.dtype = next(model.parameters()).dtype
        self.wide = torch.float64 if self.dtype == torch.float64 else torch.float32

    def _metric(self, logits: Any, clean: Any, answer: Any, top: Any) -> Any:
        """The circuit metric, computed in the wide dtype (fp32, or fp64 for an fp64 model)."""
        return self.metric(logits.to(self.wide), clean.to(self.wide), answer, top)

    def _cut(self) -> None:
        step_boundary(self.device)

    def _runs(self, clean: Any, corrupt: Any) -> tuple[Any, Any, Any]:
        with self.torch.no_grad():
            logits_c, z_c = self.cm.forward(clean)
            logits_p, z_p = self.cm.forward(corrupt)
        return logits_c[:, -1], z_c, z_p - z_c, logits_p[:, -1]  # type: ignore[return-value]

    def _grads(self, clean: Any, clean_last: Any, answer: Any, top: Any,
               embeds: Any | None) -> Any:
        probes = self.torch.zeros(self.cm.n_dst, *clean.shape, self.cm.d, device=self.device,
                                  dtype=self.dtype, requires_grad=True)
        logits, _ = self.cm.forward(clean, probes, embeds=embeds)
        value = self._metric(logits[:, -1], clean_last, answer, top).sum()
        (grad,) = self.torch.autograd.grad(value, probes)
        return grad

    def eap(self) -> Any:
        """One gradient at the clean input."""
        scores = self.torch.zeros(self.cm.n_src, self.cm.n_dst, device=self.device,
                                  dtype=self.wide)
        for clean, corrupt, answer in self.batches:
            clean_last, _, dz, corrupt_last = self._runs(clean, corrupt)
            g = self._grads(clean, clean_last, answer, corrupt_last.argmax(-1), None)
            scores += self.torch.einsum("ubtd,vbtd->uv", dz, g).to(self.wide)
            self._cut()
        return (scores / self.n) * self.mask

    def eap_ig(self, steps: int = 5, endpoints: str = "paper") -> Any:
        """Gradients averaged along embeddings interpolated from corrupted to clean.

        ``paper``: alpha = k/m for k = 1..m (includes the clean end); ``left``: k = 0..m-1.
        """
        ks = range(1, steps + 1) if endpoints == "paper" else range(steps)
        scores = self.torch.zeros(self.cm.n_src, self.cm.n_dst, device=self.device,
                                  dtype=self.wide)
        for clean, corrupt, answer in self.batches:
            clean_last, z_c, dz, corrupt_last = self._runs(clean, corrupt)
            top = corrupt_last.argmax(-1)
            e_c, e_p = z_c[0], z_c[0] + dz[0]
            total = None
            for k in ks:
                g = self._grads(clean, clean_last, answer, top, e_p + (k / steps) * (e_c - e_p))
                total = g if total is None else total + g
                self._cut()
            scores += self.torch.einsum("ubtd,vbtd->uv", dz, total).to(self.wide) / steps
            self._cut()
        return (scores / self.n) * self.mask

    def exact(self) -> Any:
        """metric(edge patched) - metric(clean) for every edge: the ground truth (slow)."""
        torch = self.torch
        scores = torch.zeros(self.cm.n_src, self.cm.n_dst, device=self.device, dtype=self.wide)
        edges = self.mask.nonzero().tolist()
        with torch.no_grad():
            for clean, corrupt, answer in self.batches:
                clean_last, _, dz, corrupt_last = self._runs(clean, corrupt)
                top = corrupt_last.argmax(-1)
                base = self._metric(clean_last, clean_last, answer, top).sum()
                probes = torch.zeros(self.cm.n_dst, *clean.shape, self.cm.d, device=self.device,
                                     dtype=self.dtype)
                for u, v in edges:
                    probes[v] = dz[u]
                    logits, _ = self.cm.forward(clean, probes)
                    probes[v] = 0
                    value = self._metric(logits[:, -1], clean_last, answer, top)
                    scores[u, v] += value.sum() - base
                    self._cut()
        return scores / self.n

    def faithfulness(self, in_circuit: Any) -> dict[str, float]:
        """Patch every non-circuit edge with its corrupted activation.

        Returns the paper's percentage 100·(1 - |B - C|/B) and the normalized
        (m(C) - m(∅)) / (m(M) - m(∅)), with B the corrupted run's metric and C the circuit's.
        """
        torch = self.torch
        base = circuit = clean_value = 0.0
        off = (self.mask & ~in_circuit.to(self.device)).to(self.dtype)
        with torch.no_grad():
            for clean, corrupt, answer in self.batches:
                clean_last, _, dz, corrupt_last = self._runs(clean, corrupt)
                top = corrupt_last.argmax(-1)
                probes = torch.einsum("ubtd,uv->vbtd", dz, off)
                logits, _ = self.cm.forward(clean, probes)
                circuit += float(self._metric(logits[:, -1], clean_last, answer,
                                             top).sum())
                base += float(self._metric(corrupt_last, clean_last, answer, top).sum())
                clean_value += float(self._metric(clean_last, clean_last, answer, top).sum())
        b, c, m = base / self.n, circuit / self.n, clean_value / self.n
        paper = 100.0 * (1 - abs(b - c) / b) if b else float("nan")
        normalized = (c - b) / (m - b) if m != b else float("nan")
        return {"paper_percent": paper, "normalized": normalized, "baseline": b, "circuit": c}
