"""Built-in optimizers and learning-rate schedules, written with ``specc.api`` and registered
through the ``specc.components`` entry point like every plug-in: their signatures here are their
catalogue entries (read with ``ast`` by ``specc check``; torch is imported only when a run
calls a builder).

An optimizer's builder returns ``make(named_parameters, backend_kwargs) -> torch optimizer``;
a schedule's returns ``factor(step, total_steps, tokens_per_step) -> float``, the multiplier
of the peak learning rate at a (0-based) step, with warm-up in steps or in tokens.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from specc.api import BuildContext, Range, Searched, component
from specc.diagnostics import SpeccError


@component("optimizer")
def adamw(
    lr: Annotated[float | Searched, Range(lo=0, lo_open=True)] = 1e-3,
    weight_decay: Annotated[float, Range(lo=0)] = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: Annotated[float, Range(lo=0, lo_open=True)] = 1e-8,
    *, ctx: BuildContext,
) -> Any:
    """AdamW (fused on CUDA).

    Args:
        lr: learning rate (or `searched`)
        weight_decay: decoupled weight decay
        betas: Adam betas
        eps: numerical epsilon
    """
    return _adam("AdamW", lr, weight_decay, betas, eps)


@component("optimizer")
def adam(
    lr: Annotated[float | Searched, Range(lo=0, lo_open=True)] = 1e-3,
    weight_decay: Annotated[float, Range(lo=0)] = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: Annotated[float, Range(lo=0, lo_open=True)] = 1e-8,
    *, ctx: BuildContext,
) -> Any:
    """Adam.

    Args:
        lr: learning rate (or `searched`)
        weight_decay: decoupled weight decay
        betas: Adam betas
        eps: numerical epsilon
    """
    return _adam("Adam", lr, weight_decay, betas, eps)


@component("optimizer")
def sgd(
    lr: Annotated[float | Searched, Range(lo=0, lo_open=True)] = 1e-3,
    weight_decay: Annotated[float, Range(lo=0)] = 0.0,
    momentum: Annotated[float, Range(lo=0, hi=1)] = 0.9,
    nesterov: bool = False,
    *, ctx: BuildContext,
) -> Any:
    """SGD with momentum.

    Args:
        lr: learning rate (or `searched`)
        weight_decay: decoupled weight decay
        momentum: momentum
        nesterov: Nesterov momentum
    """
    def make(named: list[Any], extra: dict[str, Any]) -> Any:
        import torch

        return torch.optim.SGD(_groups(named, weight_decay), lr=_lr(lr), momentum=momentum,
                               nesterov=bool(nesterov))

    return make


@component("schedule")
def constant(
    warmup: Annotated[int, Range(lo=0)] = 0,
    warmup_tokens: Annotated[int, Range(lo=0)] = 0,
    *, ctx: BuildContext,
) -> Any:
    """Constant learning rate after warm-up.

    Args:
        warmup: warm-up steps
        warmup_tokens: warm-up in tokens (instead of steps)
    """
    return _schedule(warmup, warmup_tokens, lambda progress: 1.0)


@component("schedule")
def linear(
    warmup: Annotated[int, Range(lo=0)] = 0,
    warmup_tokens: Annotated[int, Range(lo=0)] = 0,
    final: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    *, ctx: BuildContext,
) -> Any:
    """Linear decay to `final` after warm-up.

    Args:
        warmup: warm-up steps
        warmup_tokens: warm-up in tokens (instead of steps)
        final: final lr as a share of peak
    """
    return _schedule(warmup, warmup_tokens, lambda p: 1.0 - (1.0 - final) * p)


@component("schedule")
def cosine(
    warmup: Annotated[int, Range(lo=0)] = 0,
    warmup_tokens: Annotated[int, Range(lo=0)] = 0,
    final: Annotated[float, Range(lo=0, hi=1)] = 0.1,
    *, ctx: BuildContext,
) -> Any:
    """Cosine decay to `final` after warm-up.

    Args:
        warmup: warm-up steps
        warmup_tokens: warm-up in tokens (instead of steps)
        final: final lr as a share of peak
    """
    return _schedule(warmup, warmup_tokens,
                     lambda p: final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p)))


@component("schedule")
def wsd(
    warmup: Annotated[int, Range(lo=0)] = 0,
    warmup_tokens: Annotated[int, Range(lo=0)] = 0,
    decay: Annotated[float, Range(lo=0, hi=1)] = 0.2,
    final: Annotated[float, Range(lo=0, hi=1)] = 0.0,
    *, ctx: BuildContext,
) -> Any:
    """Warmup-stable-decay.

    Args:
        warmup: warm-up steps
        warmup_tokens: warm-up in tokens (instead of steps)
        decay: share of training spent decaying
        final: final lr as a share of peak
    """
    start = 1.0 - decay

    def shape(p: float) -> float:
        return 1.0 if p < start else 1.0 - (1.0 - final) * (p - start) / max(decay, 1e-9)

    return _schedule(warmup, warmup_tokens, shape)


def _schedule(warmup: int, warmup_tokens: int, shape: Any) -> Any:
    """The factor at a step: linear warm-up (in steps, or in tokens turned into steps), then
    ``shape(progress)`` over the remaining steps (progress from 0 to 1)."""
    def factor(step: int, total: int, tokens_per_step: float) -> float:
        steps = int(warmup or 0)
        if warmup_tokens:
            steps = max(steps, math.ceil(float(warmup_tokens) / max(tokens_per_step, 1)))
        if steps and step < steps:
            return (step + 1) / steps
        if total <= steps:
            return 1.0
        return float(shape(min(1.0, (step - steps) / max(1, total - steps))))

    return factor


def _adam(cls: str, lr: Any, weight_decay: float, betas: tuple[float, float],
          eps: float) -> Any:
    """``torch.optim.Adam`` or ``AdamW`` over the decay groups, with the backend's keywords
    (``fused=True`` on CUDA)."""
    def make(named: list[Any], extra: dict[str, Any]) -> Any:
        import torch

        return getattr(torch.optim, cls)(_groups(named, weight_decay), lr=_lr(lr),
                                         betas=tuple(betas), eps=eps, **extra)

    return make


def _lr(lr: Any) -> float:
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        msg = "the learning rate is not bound: `lr = searched` needs a sweep that sets lr"
        raise SpeccError(msg)
    return float(lr)


def _groups(named: list[Any], wd: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and embeddings' 1-D parameters (the usual practice)."""
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": float(wd)}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
