"""Circuits along training: the base model's circuit, `checkpoints every N steps { measure
circuit }`, the node_jaccard / edge_jaccard metrics against the base circuit, and the circuit's
faithfulness."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specc.components import metrics as M
from specc.runtime.control import stage

if TYPE_CHECKING:
    from specc.runtime.loop import Trainer


class CircuitWatch:
    """Circuits along training: the base model's circuit, `checkpoints every N steps { measure
    circuit }`, and the node_jaccard / edge_jaccard metrics against the base circuit."""

    def __init__(self, trainer: Trainer, base: Any, every: int, wants_metrics: bool) -> None:
        self.trainer, self.base, self.every = trainer, base, every
        self.wants_metrics = wants_metrics
        self.current: tuple[int, Any] | None = None
        self.info: dict[str, Any] = {}

    @classmethod
    def create(cls, trainer: Trainer, model: Any) -> CircuitWatch | None:
        cfg = trainer.cfg
        metrics = cfg.get("metrics") or []
        wants = any(isinstance(trainer.metric_objects.get(M.metric_key(m)), M.CircuitStatistic)
                    for m in metrics)
        every = 0
        for c in cfg.get("checkpoints") or []:
            if c["unit"] == "steps" and any(_is_circuit(m) for m in c["measure"]):
                every = int(c["every"])
        policy = cfg["policy"]
        # circuit_lora starts from the task's base circuit, unless subtask circuits stand in
        needs_base = wants or every or (policy.get("component") == "circuit_lora"
                                        and not policy.get("subtasks"))
        if not needs_base:
            return None
        from specc.circuits.allocate import circuit_config
        from specc.circuits.discover import discover

        with stage("circuit", trainer.spans.get("model")):
            circuit_cfg = circuit_config(cfg)
            pairs = trainer.data.pairs()
            base, info = discover(model.to(trainer.rt.device), pairs, circuit_cfg)
        base.save(trainer.path / "circuits" / "base.json", step=0, **info)
        watch = cls(trainer, base, every, wants)
        watch.cfg, watch.pairs = circuit_cfg, pairs
        return watch

    def circuit_at(self, step: int) -> Any:
        if self.current is not None and self.current[0] == step:
            return self.current[1]
        from specc.circuits.circuit import edge_jaccard, node_jaccard
        from specc.circuits.discover import discover

        circuit, info = discover(self.trainer.model_raw, self.pairs, self.cfg)
        circuit.save(self.trainer.path / "circuits" / f"step-{step:08d}.json", step=step,
                     node_jaccard=node_jaccard(circuit, self.base),
                     edge_jaccard=edge_jaccard(circuit, self.base), **info)
        self.current = (step, circuit)
        self.info = info
        return circuit

    def on_step(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self.circuit_at(step)

    def measure(self, step: int, metrics: list[dict[str, Any]]) -> dict[str, float]:
        circuit = self.circuit_at(step)
        out: dict[str, float] = {}
        for m in metrics:
            stat = self.trainer.metric_objects.get(M.metric_key(m))
            if isinstance(stat, M.CircuitStatistic):
                out.update(stat.value(circuit, self.base, self.info))
        return out


def _is_circuit(cfg: Any) -> bool:
    """Whether a checkpoint's measure is a circuit (a call of a circuit method)."""
    from specc.catalogue.components import lookup

    found = lookup(str(cfg.get("component"))) if isinstance(cfg, dict) else None
    return found is not None and found.kind == "circuit"
