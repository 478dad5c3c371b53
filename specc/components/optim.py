"""Optimizers and learning-rate schedules (warm-up in steps or in tokens)."""

from __future__ import annotations

import math
from typing import Any

from specc.diagnostics import SpeccError


def build_optimizer(params: list[Any], cfg: dict[str, Any], extra: dict[str, Any]) -> Any:
    """``extra`` holds the backend's keyword arguments (``fused=True`` on CUDA)."""
    import torch

    name = cfg["component"]
    lr = cfg["lr"]
    if not isinstance(lr, (int, float)):
        msg = "the learning rate is not bound: `lr = searched` needs a sweep that sets lr"
        raise SpeccError(msg)
    groups = _decay_groups(params, float(cfg.get("weight_decay", 0.0)))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"],
                                 **extra)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"],
                                **extra)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"],
                               nesterov=bool(cfg["nesterov"]))
    msg = f"unknown optimizer {name!r}"
    raise SpeccError(msg)


def _decay_groups(named: list[Any], wd: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and embeddings' 1-D parameters (the usual practice)."""
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": wd}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def lr_factor(cfg: dict[str, Any], step: int, total: int, tokens_per_step: float) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-based) of ``total``."""
    warmup = int(cfg.get("warmup") or 0)
    if cfg.get("warmup_tokens"):
        warmup = max(warmup, math.ceil(float(cfg["warmup_tokens"]) / max(tokens_per_step, 1)))
    if warmup and step < warmup:
        return (step + 1) / warmup
    name = cfg["component"]
    if name == "constant" or total <= warmup:
        return 1.0
    final = float(cfg.get("final") or 0.0)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if name == "linear":
        return 1.0 - (1.0 - final) * progress
    if name == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "wsd":
        decay = float(cfg.get("decay") or 0.2)
        start = 1.0 - decay
        if progress < start:
            return 1.0
        return 1.0 - (1.0 - final) * (progress - start) / max(decay, 1e-9)
    msg = f"unknown schedule {name!r}"
    raise SpeccError(msg)
