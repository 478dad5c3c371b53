"""A run's identity: the hash of what it computes (Note [Run hash])."""

from __future__ import annotations

import hashlib
import json
from typing import Any

LAYOUT = {"devices": 1, "nodes": 1, "strategy": "auto"}  # hashed as their defaults


def config_hash(config: dict[str, Any]) -> str:
    """Note [Run hash]: the hash of what a run computes. Left out: how it is reported and
    tracked (adding a tracker or a plot never trains a run again), and how it is laid out over
    devices, nodes and strategy, which a requeued job may change (Note [Sharded checkpoints])."""
    hashed = {k: v for k, v in config.items() if k not in ("report", "trackers")}
    if isinstance(train := hashed.get("train"), dict):
        hashed["train"] = {**train, **{k: v for k, v in LAYOUT.items() if k in train}}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
