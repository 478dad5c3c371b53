"""Circuits: selection (top-n, top-%, threshold), dead-node pruning, q/k/v collapse, Jaccard,
per-edge change and per-layer sums, and JSON (the run directory's circuits/*.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs

from specc.circuits.forward import Graph

_QKV = re.compile(r"<[qkv]>$")


@attrs.define
class Circuit:
    """A graph's edge scores and the edges kept (both [source, dest] matrices)."""

    graph: Graph
    scores: Any  # float tensor (n_src, n_dst)
    kept: Any  # bool tensor (n_src, n_dst)

    # -------------------------------------------------------- selection
    @classmethod
    def select(cls, graph: Graph, scores: Any, keep: float | int, how: str = "top",
               prune: bool = True) -> Circuit:
        """Top-n (an int) or top-% (a fraction) edges by |score|, or |score| >= threshold."""
        import torch

        mask = graph.upstream().to(scores.device)
        mag = scores.abs().masked_fill(~mask, -1.0)
        n_edges = int(mask.sum())
        if how == "threshold":
            kept = (mag >= float(keep)) & mask
        elif how == "greedy":
            n = int(keep) if isinstance(keep, int) and keep >= 1 else max(1, int(keep * n_edges))
            kept = _greedy(graph, mag, mask, n)
        else:  # "top": the n edges of largest |score|
            n = int(keep) if isinstance(keep, int) and keep >= 1 else max(1, int(keep * n_edges))
            flat = mag.flatten()
            idx = torch.topk(flat, min(n, n_edges)).indices
            kept = torch.zeros_like(flat, dtype=torch.bool)
            kept[idx] = True
            kept = kept.view_as(mask) & mask
        circuit = cls(graph, scores, kept)
        return circuit.pruned() if prune else circuit

    def pruned(self) -> Circuit:
        """Drop nodes with no kept child edge, then nodes (not input) with no kept parent edge.

        Node ids: a source "a0.h1" is the same node as the destinations "a0.h1<q/k/v>".
        """
        kept = self.kept.clone()
        g = self.graph
        dest_node = [_QKV.sub("", d) for d in g.dests]
        while True:
            changed = False
            has_child = {s: bool(kept[i].any()) for i, s in enumerate(g.sources)}
            has_parent: dict[str, bool] = {}
            for j, node in enumerate(dest_node):
                has_parent[node] = has_parent.get(node, False) or bool(kept[:, j].any())
            for i, s in enumerate(g.sources):
                dead = not has_child[s] or (s != "input" and not has_parent.get(s, False))
                if dead and kept[i].any():
                    kept[i] = False
                    changed = True
            for j, node in enumerate(dest_node):
                if node != "logits" and not has_child.get(node, False) and kept[:, j].any():
                    kept[:, j] = False
                    changed = True
            if not changed:
                return Circuit(g, self.scores, kept)

    # -------------------------------------------------------- views
    def edges(self) -> dict[tuple[str, str], float]:
        """Kept edges with their signed scores (q/k/v destinations kept apart)."""
        g = self.graph
        return {(g.sources[i], g.dests[j]): float(self.scores[i, j])
                for i, j in self.kept.nonzero().tolist()}

    def collapsed(self) -> dict[tuple[str, str], float]:
        """q, k and v edges into a head merged into one head edge (summed signed scores)."""
        out: dict[tuple[str, str], float] = {}
        for (u, v), s in self.edges().items():
            key = (u, _QKV.sub("", v))
            out[key] = out.get(key, 0.0) + s
        return out

    def nodes(self) -> set[str]:
        out: set[str] = set()
        for u, v in self.collapsed():
            out.update((u, v))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.graph.layers, "heads": self.graph.heads,
                "parallel": self.graph.parallel,
                "edges": [{"from": u, "to": v, "score": s} for (u, v), s in self.edges().items()],
                "collapsed": [{"from": u, "to": v, "score": s}
                              for (u, v), s in self.collapsed().items()],
                "nodes": sorted(self.nodes()),
                "n_edges_total": int(self.graph.upstream().sum())}

    def save(self, path: Path, **extra: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_json(), **extra}, indent=1))


def _greedy(graph: Graph, mag: Any, mask: Any, n: int) -> Any:
    """Grow the circuit backwards from the logits: repeatedly add the highest-|score| edge
    whose destination node is already in the circuit (EAP-IG library's greedy selection)."""
    import torch

    kept = torch.zeros_like(mask)
    dest_node = [_QKV.sub("", d) for d in graph.dests]
    in_circuit = {"logits"}
    for _ in range(n):
        open_cols = torch.tensor([node in in_circuit for node in dest_node],
                                 device=mask.device)
        cand = mag.masked_fill(kept | ~mask | ~open_cols[None, :], -1.0)
        best = int(cand.argmax())
        if float(cand.flatten()[best]) < 0:
            break
        u, v = divmod(best, len(graph.dests))
        kept[u, v] = True
        in_circuit.add(graph.sources[u])
    return kept


def jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def node_jaccard(a: Circuit, b: Circuit) -> float:
    return jaccard(a.nodes(), b.nodes())


def edge_jaccard(a: Circuit, b: Circuit) -> float:
    return jaccard(set(a.collapsed()), set(b.collapsed()))


def edge_change(before: Circuit, after: Circuit, normalize: bool = False) -> Any:
    """|s_after - s_before| on edges in both circuits; an edge in one circuit only counts its
    own |score| (seed1_circuit_lora.md §3). ``normalize`` scales each circuit's scores to a
    maximum |score| of 1 first."""
    sb, sa = before.scores, after.scores
    if normalize:
        sb = sb / sb.abs().max().clamp(min=1e-30)
        sa = sa / sa.abs().max().clamp(min=1e-30)
    both = before.kept & after.kept
    change = (sa - sb).abs() * both
    change = change + sb.abs() * (before.kept & ~after.kept)
    return change + sa.abs() * (after.kept & ~before.kept)


def per_layer(graph: Graph, change: Any, include_input: bool = True) -> list[float]:
    """Edge change summed by source layer; the input node counts to layer 0 unless excluded."""
    sums = [0.0] * graph.layers
    for i, s in enumerate(graph.sources):
        layer = graph.source_layer(s)
        if layer < 0:
            if not include_input:
                continue
            layer = 0
        sums[layer] += float(change[i].sum())
    return sums


def critical_layers(sums: list[float], selector: dict[str, Any]) -> list[int]:
    """The layers a selector component picks from the per-layer sums."""
    from specc.components import build

    return list(build(selector)(sums))


def union(circuits: list[Circuit], n_edges: int) -> Circuit:
    """The union of subtask circuits (mean score on shared edges), truncated to ``n_edges``."""
    import torch

    g = circuits[0].graph
    total = torch.zeros_like(circuits[0].scores)
    count = torch.zeros_like(circuits[0].scores)
    kept = torch.zeros_like(circuits[0].kept)
    for c in circuits:
        total += c.scores * c.kept
        count += c.kept.float()
        kept |= c.kept
    mean = total / count.clamp(min=1)
    return Circuit.select(g, mean * kept, n_edges, prune=False)
