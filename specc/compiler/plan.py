"""Expand sweeps into concrete runs with content hashes, keep searches as spaces, estimate cost."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from specc.compiler import ir
from specc.compiler.run_hash import config_hash

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
    tokens: int  # items for models that are not language models (``unit``)
    flops: float | None  # None: a run's model shape is unknown (Note [Run cost])
    unit: str = "tokens"

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

    def run_params(self) -> Callable[[Run], dict[str, int | None]]:
        """A function giving each run's parameter counts: its model's and its policy's
        trainable ones (None where a shape is unknown at check time)."""
        costs = _RunCosts(self)
        return lambda run: costs.counts(run.config)

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
    maker = RunMaker(exp)
    for index, binding in enumerate(_bindings(exp)):
        yield maker.make(binding, index)


class RunMaker:
    """Note [One way to make a run]: every run, whether a grid's, a search trial's or a CBS
    race's, gets its configuration and hash here, after every change its strategy makes, so
    `specc plan` lists exactly the hashes the store will hold:

    - a search trial also measures its objective (added to `metrics` when missing);
    - a CBS run trains to a token budget, not a step count: `max_tokens`, or for the reference
      batch the largest `loss_at(batch = reference, tokens = T)` it must read.
    """

    def __init__(self, exp: ir.Experiment) -> None:
        self.exp = exp
        self.template = _Template(exp)
        self.objectives = _objective_metrics(exp.search) if exp.search is not None else []
        self.cbs = _cbs_budgets(exp.sweep) if exp.sweep is not None and \
            exp.sweep.kind == "cbs" else None

    def config(self, binding: dict[str, ir.Value]) -> dict[str, Any]:
        from specc.compiler import rewrites

        config = self.template.resolve(binding)
        if isinstance(config.get("train"), dict):  # Note [Rewrites]: the ones applied
            config["train"]["rewrites"] = rewrites.applied(config)
        if self.objectives:
            metrics = list(config.get("metrics") or [])
            config["metrics"] = metrics + [m for m in self.objectives if m not in metrics]
        if self.cbs is not None:
            budgets, default = self.cbs
            batch = config.get("train", {}).get("batch")
            config["train"]["steps"] = None
            config["train"]["tokens"] = budgets.get(batch, default)
        return config

    def make(self, binding: dict[str, ir.Value], index: int = 0) -> Run:
        config = self.config(binding)
        return Run(experiment=self.exp.name, index=index,
                   bindings={k: ir.plain(v) for k, v in binding.items()}, config=config,
                   hash=config_hash(config))


def _objective_metrics(search: ir.Search) -> list[Any]:
    value = search.setting("objective")
    items = value.items if isinstance(value, ir.ListV) else (value,)
    return [_plain_resolved(i.value, {}, {}) for i in items if isinstance(i, ir.Directed)]


def _cbs_budgets(sweep: ir.Sweep) -> tuple[dict[int, int], int | None]:
    """(token budget per batch that reads `loss_at` targets, max_tokens for the others)."""
    def const(v: ir.Value | None) -> Any:
        return v.value if isinstance(v, ir.Const) else None

    reference, most = const(sweep.setting("reference")), const(sweep.setting("max_tokens"))
    target = sweep.setting("target")
    items = target.items if isinstance(target, ir.ListV) else (target,)
    budgets: dict[int, int] = {}
    for item in items:
        if isinstance(item, ir.Op) and item.op == "loss_at" and len(item.args) == 2:
            b, t = item.args
            batch = reference if isinstance(b, ir.Var) and b.name == "reference" else const(b)
            if isinstance(batch, int) and isinstance(const(t), (int, float)):
                budgets[batch] = max(budgets.get(batch, 0), int(const(t)))
    return budgets, most


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
        case ir.Comp(name=name, args=args, python=python):
            return {"component": name,
                    **{a.name: _plain_resolved(a.value, decls, env) for a in args},
                    **ir.python_key(python)}
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
    if "python" in model or "python" in data:  # a specc.api model counts items, not tokens
        seq = 1
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
    """Runs, steps, tokens and FLOPs of an experiment, each run costed from its own model
    (a swept model, a top-level declaration, a checkpoint of another experiment, a local
    pretrained model). FLOPs are None when a run's model shape is unknown, never 0."""
    cost = _cost_of(plan)
    first = next(iter(_runs(plan)), None)
    model = first.config.get("model") if first is not None else None
    if isinstance(model, dict) and "python" in model:
        return attrs.evolve(cost, unit="items")
    return cost


def _cost_of(plan: ExperimentPlan) -> Cost:
    exp = plan.experiment
    costs = _RunCosts(plan)
    if exp.search is not None:
        s, t, f = costs.of(resolve_config(exp, plan.program, {}))
        trials = _trials(exp)
        return Cost(runs=trials, steps=s * trials, tokens=t * trials,
                    flops=None if f is None else f * trials)
    if exp.sweep is not None and (not _has_when(exp) or not plan.count_exact):
        # The closed form over the axes that change a run's cost; the rest multiply (a huge
        # grid with `when` conditions: an upper bound, as count_exact says).
        return _grid_cost(exp, plan, costs)
    runs = steps = tokens = 0
    flops: float | None = 0.0
    for run in _runs(plan):
        s, t, f = costs.of(run.config)
        runs, steps, tokens = runs + 1, steps + s, tokens + t
        flops = None if flops is None or f is None else flops + f
    return Cost(runs=runs, steps=steps, tokens=tokens, flops=flops)


def _grid_cost(exp: ir.Experiment, plan: ExperimentPlan, costs: _RunCosts) -> Cost:
    assert exp.sweep is not None
    groups = _axis_groups(exp)
    template = _Template(exp)  # resolved once, not once per combination
    fixed = template.resolve({})
    # An axis changes a run's cost when it sets a budget, the model or the policy, or is a
    # variable one of them uses.
    costly = {"train.batch", "train.steps", "train.epochs", "train.tokens", "model", "policy",
              "data"}
    used = {var for key, v in fixed.items() if key in ("model", "policy", "data", "train")
            for var in _vars_in(v)}
    varying = [g for g in groups if any(a.path in costly or a.path in used for a in g)]
    rest = math.prod(ir.axis_size(g[0].values) for g in groups if g not in varying)
    steps = tokens = 0
    flops: float | None = 0.0
    for combo in _product([ir.axis_size(g[0].values) for g in varying]):
        binding = {a.path: a.values[i] for g, i in zip(varying, combo, strict=True) for a in g}
        s, t, f = costs.of(template.resolve(binding))
        steps, tokens = steps + s, tokens + t
        flops = None if flops is None or f is None else flops + f
    return Cost(runs=plan.count, steps=steps * rest, tokens=tokens * rest,
                flops=None if flops is None else flops * rest)


def _vars_in(v: Any) -> set[str]:
    """The sweep variables a resolved configuration still names ({"var": name})."""
    if isinstance(v, dict):
        if set(v) == {"var"}:
            return {str(v["var"])}
        return set().union(*(_vars_in(x) for x in v.values())) if v else set()
    if isinstance(v, list):
        return set().union(*(_vars_in(x) for x in v)) if v else set()
    return set()


class _RunCosts:
    """Note [Run cost]: a run costs 6·N·T FLOPs for training (N its model's parameters, T its
    tokens). circuit_lora adds its probe fine-tune (probe_epochs over the training split) and
    each circuit discovery adds two forwards over the clean and corrupted pairs plus one
    forward and backward per attribution step (EAP: 1, EAP-IG: steps)."""

    def __init__(self, plan: ExperimentPlan) -> None:
        self.plan = plan
        self.base = Path(plan.experiment.file).parent
        self.fixed_model = _Template(plan.experiment).resolve({}).get("model")
        # id-keyed memo; each entry keeps its objects alive so their ids stay theirs
        self._memo: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def params(self, model: Any) -> int | None:
        # Runs share their static parts (Note [Plan streaming]): count each object once.
        key = (id(model),)
        if key not in self._memo:
            self._memo[key] = (model, self._params(model))
        return self._memo[key][1]  # type: ignore[no-any-return]

    def _params(self, model: Any) -> int | None:
        from specc.compiler import params as P

        if model == self.fixed_model and self.plan.experiment.params is not None:
            return self.plan.experiment.params  # counted at lowering, through any checkpoint
        if isinstance(model, dict) and model.get("component") == "checkpoint":
            model = self._checkpoint_model(model)
        if not isinstance(model, dict) or _vars_in(model) or "component" not in model:
            return None
        comp = P.with_local_shapes(_from_plain(model), self.base)  # type: ignore[arg-type]
        return P.model_params(comp) if isinstance(comp, ir.Comp) else None

    def counts(self, config: dict[str, Any]) -> dict[str, int | None]:
        """A run's parameters: its model's and those its policy trains (None: unknown)."""
        model, policy = config.get("model"), config.get("policy")
        key = (id(model), id(policy))
        if key not in self._memo:
            self._memo[key] = ((model, policy), self._counts(model, policy))
        return dict(self._memo[key][1])  # type: ignore[arg-type]

    def _counts(self, model: Any, policy: Any) -> dict[str, int | None]:
        from specc.compiler import params as P

        n = self.params(model)
        trainable = None
        if n is not None and isinstance(policy, dict) and "component" in policy:
            comp: ir.Value | None = None
            if model == self.fixed_model and self.plan.experiment.shape is not None:
                comp = self.plan.experiment.shape
            else:
                if isinstance(model, dict) and model.get("component") == "checkpoint":
                    model = self._checkpoint_model(model)
                if isinstance(model, dict) and "component" in model and not _vars_in(model):
                    comp = P.with_local_shapes(_from_plain(model), self.base)
            pol = _from_plain(policy)
            if isinstance(comp, ir.Comp) and isinstance(pol, ir.Comp):
                trainable = P.policy_params(pol, comp)
        return {"model": n, "trainable": trainable}

    def _checkpoint_model(self, model: Any) -> Any:
        seen: set[str] = set()
        while isinstance(model, dict) and model.get("component") == "checkpoint":
            ref = model.get("experiment")
            name = ref.get("ref") if isinstance(ref, dict) else None
            dep = self.plan.program.experiment(name) if name else None
            if dep is None or name in seen:
                return None
            seen.add(name)
            model = _Template(dep).resolve({}).get("model")
        return model

    def of(self, config: dict[str, Any]) -> tuple[int, int, float | None]:
        s, seq = run_steps(config)
        batch = _int(config.get("train", {}).get("batch"), 32)
        steps, tokens = s, s * batch * seq
        n = self.params(config.get("model"))
        policy = config.get("policy") if isinstance(config.get("policy"), dict) else {}
        data = config.get("data") if isinstance(config.get("data"), dict) else {}
        discoveries = 0
        if policy.get("component") == "circuit_lora":
            probe = math.ceil(float(policy.get("probe_epochs") or 2)
                              * _int(data.get("train"), 0) / batch)
            steps, tokens = steps + probe, tokens + probe * batch * seq
            discoveries += 2 + len(policy.get("subtasks") or [])
        if isinstance(config.get("circuit"), dict):
            discoveries += 1
        for c in config.get("checkpoints") or []:
            measured = [m for m in c.get("measure") or [] if isinstance(m, dict)
                        and m.get("component") in ("eap", "eap_ig", "exact_patching")]
            if measured and c.get("unit") == "steps" and _int(c.get("every"), 0) > 0:
                discoveries += s // _int(c["every"])
        if n is None:
            return steps, tokens, None
        circuit = config.get("circuit") if isinstance(config.get("circuit"), dict) else {}
        grads = _int(circuit.get("steps"), 5) if circuit.get("component", "eap_ig") == \
            "eap_ig" else 1
        pair_tokens = _int(data.get("test"), 0) * seq
        per_discovery = 2 * 2.0 * n * pair_tokens + grads * 6.0 * n * pair_tokens
        return steps, tokens, 6.0 * n * tokens + discoveries * per_discovery


def _from_plain(v: Any) -> ir.Value:
    """A resolved configuration value back as an IR value (for counting parameters)."""
    if isinstance(v, dict):
        if set(v) == {"range"} and isinstance(v["range"], list) and len(v["range"]) == 2:
            return ir.RangeV(lo=int(v["range"][0]), hi=int(v["range"][1]))
        if "component" in v:
            args = tuple(ir.ArgV(name=k, value=_from_plain(x)) for k, x in v.items()
                         if k not in ("component", "name"))
            return ir.Comp(name=str(v["component"]), kind="", args=args)
    if isinstance(v, list):
        return ir.ListV(items=tuple(_from_plain(x) for x in v))
    return ir.Const(value=v)
