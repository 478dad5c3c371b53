"""Expand sweeps into concrete runs with content hashes, keep searches as spaces, estimate cost."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import attrs

from specc.compiler import ir

_OPS = ir.OPERATORS
_SHORT_TASKS = {"arithmetic": 6, "sequence": 10, "lcm": 6, "linear_fn": 10, "compositional": 8}


@attrs.frozen(kw_only=True)
class Run:
    """One concrete run: its configuration (plain JSON data) and that configuration's hash."""

    experiment: str
    index: int
    bindings: dict[str, Any] = attrs.field(eq=False)
    config: dict[str, Any] = attrs.field(eq=False)
    hash: str

    @property
    def name(self) -> str:
        if not self.bindings:
            return self.experiment
        inner = ",".join(f"{k}={_short(v)}" for k, v in self.bindings.items())
        return f"{self.experiment}[{inner}]"

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "index": self.index, "name": self.name,
                "hash": self.hash, "bindings": self.bindings, "config": self.config}


@attrs.frozen(kw_only=True)
class Cost:
    runs: int
    steps: int
    tokens: int
    flops: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class ExperimentPlan:
    """The runs of one experiment (generated lazily: a plan streams) and its search space."""

    experiment: ir.Experiment
    program: ir.Program = attrs.field(repr=False)
    strategy: str  # "single", "grid", "cbs" or "optuna"

    def runs(self) -> Iterator[Run]:
        return _runs(self)

    @property
    def count(self) -> int:
        return _count(self.experiment)

    @property
    def count_exact(self) -> bool:
        """False when ``count`` is an upper bound (a huge grid with `when` conditions)."""
        exp = self.experiment
        return not _has_when(exp) or _grid_size(exp) <= ENUMERATE_LIMIT

    def cost(self) -> Cost:
        return _cost(self)

    def search_space(self) -> dict[str, Any] | None:
        exp = self.experiment
        if exp.search is not None:
            return {
                "kind": exp.search.kind,
                "params": {p.name: {"dist": ir.plain(p.dist),
                                    "when": ir.plain(p.when) if p.when else None}
                           for p in exp.search.params},
                "derived": {f.path: ir.plain(f.value) for f in exp.search.derived},
                "settings": {f.path: ir.plain(f.value) for f in exp.search.settings},
            }
        if exp.sweep is not None and exp.sweep.kind == "cbs":
            return {"kind": "cbs",
                    "axes": {a.path: [ir.plain(v) for v in a.values] for a in exp.sweep.axes},
                    "race": [a.path for a in exp.sweep.axes if a.race],
                    "settings": {f.path: ir.plain(f.value) for f in exp.sweep.settings}}
        return None


@attrs.frozen(kw_only=True)
class Plan:
    program: ir.Program = attrs.field(repr=False)
    experiments: tuple[ExperimentPlan, ...] = attrs.field(converter=tuple)
    hash: str

    def runs(self) -> Iterator[Run]:
        for e in self.experiments:
            yield from e.runs()


def build_plan(program: ir.Program) -> Plan:
    """The plan of a checked program.

    Example:
        ``sweep grid { policy in [a, b]; seed in [0, 1, 2] }`` gives 6 runs, each with its hash.
    """
    exps = []
    for exp in program.experiments:
        strategy = ("optuna" if exp.search is not None else
                    exp.sweep.kind if exp.sweep is not None else "single")
        exps.append(ExperimentPlan(experiment=exp, program=program, strategy=strategy))
    return Plan(program=program, experiments=exps, hash=ir.content_hash(program))


# ---------------------------------------------------------------- expansion


def _axis_groups(exp: ir.Experiment) -> list[list[ir.Axis]]:
    """Axes grouped so that zipped axes advance together; order as written."""
    assert exp.sweep is not None
    groups: dict[object, list[ir.Axis]] = {}
    for i, a in enumerate(exp.sweep.axes):
        key = ("zip", a.zip_group) if a.zip_group is not None else ("axis", i)
        groups.setdefault(key, []).append(a)
    return list(groups.values())


# A grid with `when` conditions is counted by walking it up to this many combinations; beyond,
# its count is the product of its axes (an upper bound: `count_exact` says which).
ENUMERATE_LIMIT = 200_000


def _grid_size(exp: ir.Experiment) -> int:
    """Combinations of the axes, before `when` leaves any out."""
    assert exp.sweep is not None
    return math.prod(ir.axis_size(g[0].values) for g in _axis_groups(exp))


def _has_when(exp: ir.Experiment) -> bool:
    return exp.sweep is not None and any(a.when is not None for a in exp.sweep.axes)


def _count(exp: ir.Experiment) -> int:
    if exp.sweep is None:
        return 1 if exp.search is None else _trials(exp)
    size = _grid_size(exp)
    if _has_when(exp) and size <= ENUMERATE_LIMIT:
        return sum(1 for _ in _bindings(exp))
    return size


def _product(sizes: list[int]) -> Iterator[tuple[int, ...]]:
    """``itertools.product(*map(range, sizes))`` without materializing its inputs (product
    copies each one into a tuple first: fatal for a range axis of 10^18 values)."""
    if any(n <= 0 for n in sizes):
        return
    combo = [0] * len(sizes)
    while True:
        yield tuple(combo)
        i = len(sizes) - 1
        while i >= 0:
            combo[i] += 1
            if combo[i] < sizes[i]:
                break
            combo[i] = 0
            i -= 1
        if i < 0:
            return


def _trials(exp: ir.Experiment) -> int:
    assert exp.search is not None
    v = exp.search.setting("trials")
    return int(v.value) if isinstance(v, ir.Const) and isinstance(v.value, int) else 0


def _bindings(exp: ir.Experiment) -> Iterator[dict[str, ir.Value]]:
    # Note [Sweep expansion order]: the first axis varies slowest, like nested for-loops
    # in the order written; an axis whose `when` is false for a combination is left out of it.
    if exp.sweep is None:
        yield {}
        return
    groups = _axis_groups(exp)
    seen: set[str] = set()
    # An axis switched off leaves its field at the experiment's value, which later conditions
    # then see (`seed in [...] when train.batch == 8` with the batch axis off).
    fields = {f.path: f.value for f in exp.fields}
    for combo in _product([ir.axis_size(g[0].values) for g in groups]):
        binding: dict[str, ir.Value] = {}
        for g, i in zip(groups, combo, strict=True):
            for a in g:
                binding[a.path] = a.values[i]
        for g in groups:
            for a in g:
                if a.when is None:
                    continue
                env = {**{p: fields[p] for p in _refs(a.when) if p in fields}, **binding}
                if _truth(_subst(a.when, env)) is False:
                    binding.pop(a.path, None)
        key = json.dumps({k: ir.plain(v) for k, v in binding.items()}, sort_keys=True)
        if key in seen and any(a.when is not None for g in groups for a in g):
            continue  # an axis switched off by `when` makes repeated combinations
        if any(a.when is not None for g in groups for a in g):
            seen.add(key)
        yield binding


def _refs(v: ir.Value) -> set[str]:
    """The sweep variables a value mentions."""
    match v:
        case ir.Var(name=n):
            return {n}
        case ir.Op(args=items) | ir.ListV(items=items) | ir.TupleV(items=items):
            return set().union(*(_refs(i) for i in items)) if items else set()
        case ir.Comp(args=args):
            return set().union(*(_refs(a.value) for a in args)) if args else set()
    return set()


def _runs(plan: ExperimentPlan) -> Iterator[Run]:
    exp = plan.experiment
    if exp.search is not None:
        return
    template = _Template(exp)
    for index, binding in enumerate(_bindings(exp)):
        config = template.resolve(binding)
        yield Run(experiment=exp.name, index=index,
                  bindings={k: ir.plain(v) for k, v in binding.items()}, config=config,
                  hash=config_hash(config))


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dynamic(v: ir.Value) -> bool:
    """Whether a value depends on sweep variables (so it is resolved per run)."""
    match v:
        case ir.Var() | ir.Searched() | ir.Op():
            return True
        case ir.ListV(items=items) | ir.TupleV(items=items):
            return any(_dynamic(i) for i in items)
        case ir.Comp(args=args):
            return any(_dynamic(a.value) for a in args)
        case ir.Directed(value=inner) | ir.MemberV(base=inner):
            return _dynamic(inner)
    return False


class _Template:
    """An experiment's configuration with the run-independent parts resolved once.

    Note [Plan streaming]: a grid of 100,000 runs is resolved one run at a time from this
    template; only values that mention a sweep variable are substituted per run.
    """

    def __init__(self, exp: ir.Experiment) -> None:
        self.exp = exp
        derived = (exp.sweep.derived if exp.sweep else ()) + (
            exp.search.derived if exp.search else ())
        self.derived = derived
        self.fields = {f.path: f.value for f in exp.fields}
        self.decls = {d.name: d.value for d in exp.decls}
        swept = {a.path for a in exp.sweep.axes} if exp.sweep else set()
        swept |= {f.path for f in derived}
        self.dynamic_decls = {n for n, v in self.decls.items() if _dynamic(v)}
        self.static: dict[str, Any] = {}
        empty: dict[str, ir.Value] = {}
        for path, value in self.fields.items():
            if path not in swept and not _dynamic(value) and not self._refers_dynamic(value):
                self.static[path] = _plain_resolved(value, self.decls, empty)
        self.static_decls = {n: _plain_resolved(v, self.decls, empty)
                             for n, v in self.decls.items() if n not in self.dynamic_decls}

    def _refers_dynamic(self, v: ir.Value) -> bool:
        match v:
            case ir.Ref(name=n):
                return n in self.dynamic_decls
            case ir.ListV(items=items) | ir.TupleV(items=items):
                return any(self._refers_dynamic(i) for i in items)
            case ir.Comp(args=args):
                return any(self._refers_dynamic(a.value) for a in args)
        return False

    def resolve(self, binding: dict[str, ir.Value]) -> dict[str, Any]:
        env = dict(binding)
        for f in self.derived:
            env[f.path] = _fold(_subst(f.value, env))
        values: dict[str, Any] = dict(self.static)
        for path, value in self.fields.items():
            if path in env and (path in self.fields or path.startswith("train.")):
                value = env[path]
            elif path in self.static:
                continue
            values[path] = _plain_resolved(_fold(_subst(value, env)), self.decls, env)
        for path, value in env.items():
            if path not in self.fields and path.startswith("train."):
                values[path] = _plain_resolved(value, self.decls, env)
        out: dict[str, Any] = {}
        for path in sorted(values):
            _put(out, path, values[path])
        decls = dict(self.static_decls)
        for n in self.dynamic_decls:
            decls[n] = _plain_resolved(_fold(_subst(self.decls[n], env)), self.decls, env)
        out["decls"] = {n: decls[n] for n in sorted(decls)}
        exp = self.exp
        out["checkpoints"] = [{"every": c.every, "unit": c.unit,
                               "measure": [_plain_resolved(m, self.decls, env)
                                           for m in c.measures]}
                              for c in exp.checkpoints]
        if exp.sweep is not None and exp.sweep.kind == "cbs":
            out["cbs"] = {f.path: ir.plain(f.value) for f in exp.sweep.settings}
        return out


def resolve_config(exp: ir.Experiment, program: ir.Program,
                   binding: dict[str, ir.Value]) -> dict[str, Any]:
    """The fully resolved configuration of one run: references replaced by what they name."""
    del program
    return _Template(exp).resolve(binding)


def _put(out: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``out``, copying each dict on the way: the template's static values are
    shared by every run, so a swept member (``train.optimizer.lr``) must never write into them."""
    parts = path.split(".")
    for p in parts[:-1]:
        child = out.get(p)
        out[p] = child = dict(child) if isinstance(child, dict) else {}
        out = child
    out[parts[-1]] = value


def _plain_resolved(v: ir.Value, decls: dict[str, ir.Value], env: dict[str, ir.Value]) -> Any:
    if isinstance(v, ir.Ref) and v.name in decls and v.kind != "experiment":
        return {"name": v.name, **_as_dict(_plain_resolved(_fold(_subst(decls[v.name], env)),
                                                           decls, env))}
    match v:
        case ir.ListV(items=items) | ir.TupleV(items=items):
            return [_plain_resolved(i, decls, env) for i in items]
        case ir.Comp(name=name, args=args):
            return {"component": name,
                    **{a.name: _plain_resolved(a.value, decls, env) for a in args}}
        case ir.MemberV(base=base, name=name):
            return {"member": name, "of": _plain_resolved(base, decls, env)}
    return ir.plain(v)


def _as_dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {"value": x}


def _subst(v: ir.Value, env: dict[str, ir.Value]) -> ir.Value:
    match v:
        case ir.Var(name=n) if n in env:
            return env[n]
        case ir.Searched(name=n) if n in env:
            return env[n]
        case ir.ListV(items=items):
            return attrs.evolve(v, items=tuple(_subst(i, env) for i in items))
        case ir.TupleV(items=items):
            return attrs.evolve(v, items=tuple(_subst(i, env) for i in items))
        case ir.Op(args=args):
            return attrs.evolve(v, args=tuple(_subst(i, env) for i in args))
        case ir.Comp(args=args):
            return attrs.evolve(v, args=tuple(attrs.evolve(a, value=_subst(a.value, env))
                                              for a in args))
        case ir.Directed(value=inner):
            return attrs.evolve(v, value=_subst(inner, env))
    return v


def _fold(v: ir.Value) -> ir.Value:
    match v:
        case ir.Op(op=op, args=(a,)) if op in ir.ROUNDING:
            a = _fold(a)
            if isinstance(a, ir.Const) and isinstance(a.value, (int, float)):
                return ir.Const(value=ir.ROUNDING[op](a.value), span=v.span)
            return attrs.evolve(v, args=(a,))
        case ir.Op(op=op, args=(a, b)) if op in _OPS:
            a, b = _fold(a), _fold(b)
            if isinstance(a, ir.Const) and isinstance(b, ir.Const):
                try:
                    return ir.Const(value=_OPS[op](a.value, b.value), span=v.span)
                except (TypeError, ZeroDivisionError):
                    return v
            if op in ("==", "!=") and all(isinstance(x, ir.Ref | ir.Comp) for x in (a, b)):
                same = (a.name == b.name if isinstance(a, ir.Ref) and isinstance(b, ir.Ref)
                        else a == b)
                return ir.Const(value=same if op == "==" else not same, span=v.span)
            return attrs.evolve(v, args=(a, b))
        case ir.Comp(args=args):
            return attrs.evolve(v, args=tuple(attrs.evolve(x, value=_fold(x.value))
                                              for x in args))
        case ir.ListV(items=items):
            return attrs.evolve(v, items=tuple(_fold(i) for i in items))
    return v


def _truth(v: ir.Value) -> bool | None:
    v = _fold(v)
    return bool(v.value) if isinstance(v, ir.Const) else None


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("ref") or v.get("component") or v.get("name") or "?")
    return json.dumps(v) if isinstance(v, str) else str(v)


# ---------------------------------------------------------------- cost


def _int(v: Any, default: int = 0) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def run_steps(config: dict[str, Any]) -> tuple[int, int]:
    """(optimizer steps, sequence length) a run's configuration implies."""
    train = config.get("train", {})
    batch = max(1, _int(train.get("batch"), 32))
    data = config.get("data") or {}
    model = config.get("model") or {}
    seq = _SHORT_TASKS.get(data.get("component", ""), _int(model.get("context"), 1024))
    if train.get("steps") is not None:
        return _int(train["steps"]), seq
    if train.get("tokens") is not None:
        return max(1, _int(train["tokens"]) // (batch * seq)), seq
    cbs = config.get("cbs")
    if cbs is not None and cbs.get("max_tokens") is not None:
        return max(1, _int(cbs["max_tokens"]) // (batch * seq)), seq
    if train.get("epochs") is not None:
        size = _int(data.get("train"), 0)
        return max(1, math.ceil(float(train["epochs"]) * size / batch)), seq
    return 0, seq


def _cost(plan: ExperimentPlan) -> Cost:
    exp = plan.experiment
    n_params = exp.params or 0
    steps = tokens = 0
    if exp.search is not None:
        config = resolve_config(exp, plan.program, {})
        s, seq = run_steps(config)
        batch = _int(config.get("train", {}).get("batch"), 32)
        trials = _trials(exp)
        steps, tokens = s * trials, s * trials * batch * seq
        runs = trials
    elif exp.sweep is not None and (not _has_when(exp) or not plan.count_exact):
        # (a huge grid with `when`: the closed form over every combination, an upper bound)
        # Closed form over the axes that change the step count; the rest multiply.
        runs = plan.count
        steps, tokens = _per_run_cost(exp, plan)
    else:
        runs = 0
        for run in _runs(plan):
            runs += 1
            s, seq = run_steps(run.config)
            steps += s
            tokens += s * _int(run.config.get("train", {}).get("batch"), 32) * seq
    return Cost(runs=runs, steps=steps, tokens=tokens, flops=6.0 * n_params * tokens)


def _per_run_cost(exp: ir.Experiment, plan: ExperimentPlan) -> tuple[int, int]:
    """Steps and tokens over the whole grid without materializing it (it may be huge)."""
    assert exp.sweep is not None
    groups = _axis_groups(exp)
    budget_paths = {"train.batch", "train.steps", "train.epochs", "train.tokens"}
    varying = [g for g in groups if any(a.path in budget_paths for a in g)]
    rest = math.prod(ir.axis_size(g[0].values) for g in groups if g not in varying)
    steps = tokens = 0
    template = _Template(exp)  # resolved once, not once per combination
    for combo in _product([ir.axis_size(g[0].values) for g in varying]):
        binding = {a.path: a.values[i] for g, i in zip(varying, combo, strict=True) for a in g}
        config = template.resolve(binding)
        s, seq = run_steps(config)
        steps += s
        tokens += s * _int(config.get("train", {}).get("batch"), 32) * seq
    return steps * rest, tokens * rest
