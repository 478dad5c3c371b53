"""Circuit-aware LoRA: a probe fine-tune gives the after-circuit; layers whose circuit edges
change most get the higher rank (seed1_circuit_lora.md §3)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from specc.circuits.attribute import step_boundary
from specc.circuits.circuit import Circuit, critical_layers, edge_change, per_layer, union
from specc.circuits.discover import discover
from specc.diagnostics import SpeccError


def circuit_config(config: dict[str, Any]) -> dict[str, Any]:
    cfg = config.get("circuit")
    if not isinstance(cfg, dict) or "component" not in cfg:
        msg = ("circuit-aware LoRA and circuit metrics need `circuit = eap_ig(data = "
               "task.circuit)` in the experiment (and a task with `corrupt = ...`)")
        raise SpeccError(msg)
    return cfg


def probe_finetune(model: Any, data: Any, policy: dict[str, Any], train: dict[str, Any],
                   device: Any) -> Any:
    """The cheap probe: LoRA (rank 2 by default) for ``probe_epochs``; returns the merged model."""
    import torch
    import torch.nn.functional as F

    from specc.components.policies import apply_policy

    batch = int(train["batch"])
    steps = max(1, math.ceil(float(policy["probe_epochs"]) * data.size("train") / batch))
    probe = apply_policy(copy.deepcopy(model), policy["probe"], steps).to(device)
    params = [p for p in probe.parameters() if p.requires_grad]
    lr = train["optimizer"].get("lr")
    opt = torch.optim.AdamW(params, lr=float(lr) if isinstance(lr, (int, float)) else 1e-3)
    probe.train()
    for step in range(steps):
        b = {k: (v.to(device) if hasattr(v, "to") else v)
             for k, v in data.train_batch(10_000_000 + step, batch).items()}
        logits = probe(input_ids=b["input_ids"], attention_mask=b.get("attention_mask")).logits
        logits, labels = logits[:, :-1], b["labels"][:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_boundary(device)
    return probe.merge_and_unload()


def allocate(model: Any, data: Any, config: dict[str, Any], out: Path, device: Any,
             before: Circuit | None = None, build_data: Any = None) -> list[int]:
    """Per-layer LoRA ranks for a circuit_lora policy; writes allocation.json and circuits.

    With ``subtasks``, the before and after circuits are unions of the subtasks' circuits
    (seed1_circuit_lora.md section 5): the composite task's own circuit is never discovered.
    """
    policy = config["policy"]
    cfg = circuit_config(config)
    extra: dict[str, Any] = {}
    if policy.get("subtasks"):
        if build_data is None:
            msg = "subtask circuits need the run's vocabulary to build the subtasks' data"
            raise SpeccError(msg)
        before, after, extra = _union_circuits(model, policy, config, cfg, out, device,
                                               build_data)
    else:
        pairs = data.pairs()
        if not pairs:
            msg = "the task has no clean/corrupted pairs of equal length for circuit discovery"
            raise SpeccError(msg)
        if before is None:
            before, info_b = discover(model, pairs, cfg)
            before.save(out / "circuits" / "base.json", **info_b)
        probe = probe_finetune(model, data, policy, config["train"], device)
        after, info_a = discover(probe, pairs, cfg)
        after.save(out / "circuits" / "probe.json", **info_a)
    change = edge_change(before, after, normalize=bool(policy.get("normalize")))
    sums = per_layer(before.graph, change, include_input=bool(policy.get("include_input", True)))
    other, crit = int(policy["rank_other"]), int(policy["rank_critical"])
    if policy.get("allocation") == "exponential":
        order = sorted(range(len(sums)), key=lambda i: sums[i])
        pct = {layer: rank / max(1, len(sums) - 1) for rank, layer in enumerate(order)}
        ranks = [max(1, round(other * (crit / other) ** pct[i])) for i in range(len(sums))]
        critical = [i for i, r in enumerate(ranks) if r == crit]
    else:
        critical = critical_layers(sums, policy["critical"])
        ranks = [crit if i in critical else other for i in range(len(sums))]
    (out / "allocation.json").write_text(json.dumps(
        {"edge_change_per_layer": sums, "critical_layers": critical, "ranks": ranks,
         "allocation": policy.get("allocation", "critical"), **extra}, indent=2))
    return ranks


def _union_circuits(model: Any, policy: dict[str, Any], config: dict[str, Any],
                    cfg: dict[str, Any], out: Path, device: Any,
                    build_data: Any) -> tuple[Circuit, Circuit, dict[str, Any]]:
    """Each subtask's circuit on the base model and after its own probe fine-tune; the unions
    of each side (mean score on shared edges) truncated to the composite circuit's budget."""
    befores, afters, names = [], [], []
    for i, sub_cfg in enumerate(policy["subtasks"]):
        name = str(sub_cfg.get("name") or f"subtask{i}")
        sub = build_data(sub_cfg)
        pairs = sub.pairs() if hasattr(sub, "pairs") else []
        if not pairs:
            msg = (f"subtask {name} has no clean/corrupted pairs of equal length: give it a "
                   "`corrupt = ...`")
            raise SpeccError(msg)
        b, info_b = discover(model, pairs, cfg)
        b.save(out / "circuits" / f"subtask-{name}-base.json", **info_b)
        probe = probe_finetune(model, sub, policy, config["train"], device)
        a, info_a = discover(probe, pairs, cfg)
        a.save(out / "circuits" / f"subtask-{name}-probe.json", **info_a)
        befores.append(b)
        afters.append(a)
        names.append(name)
    n_edges = union_budget(befores[0], cfg, befores)
    before, after = union(befores, n_edges), union(afters, n_edges)
    before.save(out / "circuits" / "union-base.json", subtasks=names)
    after.save(out / "circuits" / "union-probe.json", subtasks=names)
    return before, after, {"subtasks": names, "union_edges": n_edges}


def union_budget(first: Circuit, cfg: dict[str, Any], circuits: list[Circuit]) -> int:
    """The edge count the circuit rule keeps on this graph (top-n or top-%: the composite
    circuit's count before dead-node pruning); for a threshold, the largest subtask circuit."""
    keep = cfg.get("keep", 0.05)
    if str(cfg.get("select", "top")) == "threshold":
        return max(int(c.kept.sum()) for c in circuits)
    total = int(first.graph.upstream().sum())
    return int(keep) if isinstance(keep, int) and keep >= 1 else max(1, int(keep * total))
