"""Which experiments start from which: ``checkpoint(exp)`` edges, and their cycles.

A cycle (``a`` fine-tunes ``checkpoint(b)`` and ``b`` fine-tunes ``checkpoint(a)``) can never
run, so ``check`` reports it at the ``checkpoint(...)`` that closes it, before planning pins
hashes (Note [Pinned checkpoints]) or ``run`` schedules dependencies.

Example:
    ``experiment a { model m = checkpoint(b) }`` and ``experiment b { model m = checkpoint(a) }``
    give ``checkpoint-cycle: a -> b -> a``.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from specc import diagnostics as dg
from specc.compiler.load_modules import Loaded
from specc.lang import syntax as S


def _nodes(node: object) -> Iterator[object]:
    """Every syntax node below ``node`` (itself included), without recursion."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (list, tuple)):
            stack.extend(n)
        elif attrs.has(type(n)):
            stack.extend(getattr(n, f.name) for f in attrs.fields(type(n))
                         if f.name not in ("span",) and not f.name.endswith("_span"))


def _edges(node: object) -> tuple[list[tuple[str, dg.Span]], set[str]]:
    """The ``checkpoint(NAME)`` targets under ``node`` and every name it mentions."""
    targets, names = [], set()
    for n in _nodes(node):
        if isinstance(n, S.Name):
            names.add(n.id)
        if isinstance(n, S.Call) and isinstance(n.func, S.Name) and n.func.id == "checkpoint":
            arg = next((a for a in n.args if a.name in (None, "experiment")), None)
            if arg is not None and isinstance(arg.value, S.Name):
                targets.append((arg.value.id, n.span))
    return targets, names


def dependency_graph(loaded: Loaded) -> dict[str, list[tuple[str, dg.Span]]]:
    """Experiment -> the experiments whose checkpoints it starts from (with the call's span),
    through its body, its ``extends`` parents and the top-level declarations it names."""
    experiments: dict[str, S.Experiment] = {}
    globals_: dict[str, object] = {}
    for module in loaded.modules.values():
        for item in module.items:
            if isinstance(item, S.Experiment):
                experiments.setdefault(item.name, item)
            elif isinstance(item, (S.Decl, S.Let)):
                globals_.setdefault(item.name, item.value)
    graph: dict[str, list[tuple[str, dg.Span]]] = {}
    for name, exp in experiments.items():
        found: list[tuple[str, dg.Span]] = []
        seen_nodes: set[str] = set()
        pending: list[object] = []
        e: S.Experiment | None = exp
        parents: set[str] = set()
        while e is not None and e.name not in parents:  # extends cycles are reported elsewhere
            parents.add(e.name)
            pending.append(e.body)
            e = experiments.get(e.extends) if e.extends else None
        while pending:
            targets, names = _edges(pending.pop())
            found.extend(t for t in targets if t[0] in experiments)
            for n in names - seen_nodes:
                seen_nodes.add(n)
                if n in globals_:
                    pending.append(globals_[n])
        graph[name] = found
    return graph


def check_dependency_cycles(loaded: Loaded, out: dg.Collector) -> None:
    """A ``checkpoint-cycle`` error per cycle, at the call that closes it (iterative DFS)."""
    graph = dependency_graph(loaded)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for start in graph:
        if state.get(start):
            continue
        path: list[str] = [start]
        state[start] = 1
        iters = [iter(graph[start])]
        while iters:
            step = next(iters[-1], None)
            if step is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            target, span = step
            if state.get(target) == 1:
                cycle = path[path.index(target):]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    out.error("checkpoint-cycle", span, cycle=" -> ".join([*cycle, target]),
                              help="an experiment cannot start from a checkpoint that depends "
                                   "on its own result")
            elif not state.get(target):
                state[target] = 1
                path.append(target)
                iters.append(iter(graph.get(target, ())))
