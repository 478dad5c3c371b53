"""A spec's search block as Optuna objects: distributions (define-by-run), samplers, pruners."""

from __future__ import annotations

import operator
from typing import Any

from specc.compiler import ir
from specc.diagnostics import SpeccError

_CMP = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, ">=": operator.ge}


def _const(v: ir.Value | None, default: Any = None) -> Any:
    return v.value if isinstance(v, ir.Const) else default


def _args(comp: ir.Value | None) -> dict[str, Any]:
    if not isinstance(comp, ir.Comp):
        return {}
    return {a.name: _const(a.value) for a in comp.args}


def sample(trial: Any, search: ir.Search) -> dict[str, ir.Value]:
    """Suggest every parameter whose ``when`` holds, in order (conditional parameters)."""
    values: dict[str, ir.Value] = {}
    for p in search.params:
        if p.when is not None and not holds(p.when, values):
            continue
        dist = p.dist
        a = _args(dist)
        if dist.name == "loguniform":
            v: Any = trial.suggest_float(p.name, a["lo"], a["hi"], log=True)
        elif dist.name == "uniform":
            v = trial.suggest_float(p.name, a["lo"], a["hi"])
        elif dist.name == "int":
            v = trial.suggest_int(p.name, a["lo"], a["hi"], step=a["step"], log=bool(a["log"]))
        else:
            choices = dist.arg("values")
            items = choices.items if isinstance(choices, ir.ListV) else ()
            v = trial.suggest_categorical(p.name, [_const(i, str(ir.plain(i))) for i in items])
        values[p.name] = ir.Const(value=v)
    return values


def tell(study: Any, trial: Any, values: Any = None, state: Any = None) -> None:
    """study.tell, tolerating GridSampler's ``study.stop()`` once its grid is exhausted: the
    trial's state is stored before the sampler's hook raises (Study._tell_with_warning)."""
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def holds(cond: ir.Value, env: dict[str, ir.Value]) -> bool:
    """Evaluate a ``when`` condition over the values sampled so far (unknown names: false)."""

    def val(v: ir.Value) -> Any:
        if isinstance(v, ir.Var):
            got = env.get(v.name)
            return _const(got) if got is not None else None
        if isinstance(v, ir.Const):
            return v.value
        if isinstance(v, (ir.Ref, ir.Comp)):
            return ("ref", v.name)
        if isinstance(v, ir.Op) and v.op in _CMP:
            left, right = val(v.args[0]), val(v.args[1])
            return left is not None and right is not None and _CMP[v.op](left, right)
        if isinstance(v, ir.Op) and v.op in ("and", "or"):
            left, right = val(v.args[0]), val(v.args[1])
            return (left and right) if v.op == "and" else (left or right)
        if isinstance(v, ir.Op) and v.op == "not":
            return not val(v.args[0])
        return None

    return bool(val(cond))


def objectives(search: ir.Search) -> list[tuple[str, dict[str, Any]]]:
    """(direction, metric config) for each objective."""
    from specc.compiler.plan import _plain_resolved

    value = search.setting("objective")
    items = value.items if isinstance(value, ir.ListV) else (value,)
    out = []
    for item in items:
        if not isinstance(item, ir.Directed):
            msg = "objective must be maximize or minimize a metric"
            raise SpeccError(msg)
        out.append((item.direction, _plain_resolved(item.value, {}, {})))
    return out


def build_sampler(search: ir.Search, grid_space: dict[str, list[Any]] | None = None,
                  worker: int = 0) -> Any:
    """The spec's sampler. Worker ``i`` of several gets seed + 7919·i: seeded workers must not
    all propose the same sequence (worker 0 keeps the spec's seed, so one worker reproduces)."""
    import optuna

    comp = search.setting("sampler")
    name = comp.name if isinstance(comp, ir.Comp) else "tpe"
    seed = _args(comp).get("seed")
    if seed is not None and worker:
        seed = int(seed) + 7919 * worker
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_space or grid_of(search), seed=seed)
    msg = f"unknown sampler {name}"
    raise SpeccError(msg)


def grid_of(search: ir.Search) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {}
    for p in search.params:
        if p.dist.name != "choice":
            msg = (f"sampler grid needs choice(...) for every parameter; {p.name} is "
                   f"{p.dist.name}(...)")
            raise SpeccError(msg)
        items = p.dist.arg("values")
        space[p.name] = [_const(i) for i in items.items] if isinstance(items, ir.ListV) else []
    return space


def build_pruner(search: ir.Search) -> Any:
    import optuna

    comp = search.setting("pruner")
    name = comp.name if isinstance(comp, ir.Comp) else "no_pruning"
    a = _args(comp)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=a["startup_trials"],
                                           n_warmup_steps=a["warmup_steps"])
    if name == "percentile":
        return optuna.pruners.PercentilePruner(a["percentile"], n_warmup_steps=a["warmup_steps"])
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=a["min_resource"],
                                                      reduction_factor=a["reduction_factor"])
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=a["min_resource"],
                                              max_resource=a["max_resource"] or "auto",
                                              reduction_factor=a["reduction_factor"])
    return optuna.pruners.NopPruner()
