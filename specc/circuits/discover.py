"""Find a model's circuit for a task, as a resolved ``circuit`` configuration asks."""

from __future__ import annotations

import time
from typing import Any

from specc.circuits.attribute import Attributor, Pair
from specc.circuits.circuit import Circuit


def discover(model: Any, pairs: list[Pair], cfg: dict[str, Any],
             batch: int = 32) -> tuple[Circuit, dict[str, Any]]:
    """Score every edge with the configured method and keep the configured share."""
    was_training = model.training
    model.eval()
    from specc.components import build

    metric = cfg.get("metric") or {"component": "kl_last_token"}
    att = Attributor(model, pairs, metric, batch=batch)
    t0 = time.time()
    method = cfg["component"]
    scores = build(cfg)(att)
    keep = cfg.get("keep", 0.05)
    circuit = Circuit.select(att.cm.graph, scores.detach(), keep, str(cfg.get("select", "top")))
    info = {"method": method, "examples": att.n, "seconds": round(time.time() - t0, 3),
            "faithfulness": att.faithfulness(circuit.kept)}
    model.train(was_training)
    return circuit, info
