"""Capabilities: what a run's objective, metrics and model ``require`` is ``provide``d by its model
and data, for every run of the plan (a swept model or data is checked value by value).

Example: ``dsm`` requires ``denoiser``; a run whose model is ``linear_net`` (``provides =
("classifier",)``) is an error at the line that pairs them, before anything runs.
"""

from __future__ import annotations

import contextvars
import itertools

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue.components import default_objective
from specc.compiler import ir

_MAX_COMBINATIONS = 256


def check_capabilities(program: ir.Program, out: dg.Collector) -> None:
    token = _PROGRAM.set(program)
    try:
        for exp in program.experiments:
            _check(exp, out)
    finally:
        _PROGRAM.reset(token)


_PROGRAM: contextvars.ContextVar[ir.Program | None] = contextvars.ContextVar(
    "specc_capabilities_program", default=None)


def _candidates(exp: ir.Experiment, v: ir.Value | None, path: str, depth: int = 0,
                binding: dict[str, ir.Value] | None = None) -> list[tuple[C.Component, ir.Comp]]:
    """The components a field is in a run (``binding``: the run's values of the sweep axes it
    uses; an axis not bound stands for all its values)."""
    if v is None or depth > 20:
        return []
    binding = binding or {}
    match v:
        case ir.Comp(name="checkpoint", kind="model", args=args):
            # A checkpoint provides what the model of the experiment that trained it provides.
            ref = next((a.value for a in args if a.name == "experiment"), None)
            program = _PROGRAM.get()
            dep = program.experiment(ref.name) if program is not None and isinstance(
                ref, ir.Ref) else None
            if dep is not None:
                field = _field(dep, "model")
                found = _candidates(dep, field.value, path, depth + 1, {}) if field else []
                return [(c, v) for c, _ in found]
            comp = C.lookup("checkpoint", "model")
            return [(comp, v)] if comp is not None else []
        case ir.Comp(name=name, kind=kind):
            comp = C.lookup(name, kind)
            return [(comp, v)] if comp is not None else []
        case ir.Ref(name=name):
            decl = next((d for d in exp.decls if d.name == name), None)
            return _candidates(exp, decl.value, path, depth + 1, binding) \
                if decl is not None else []
        case ir.Var(name=name) if name in binding:
            return _candidates(exp, binding[name], path, depth + 1, binding)
        case ir.Var(name=name):
            axis = next((a for a in (exp.sweep.axes if exp.sweep else ()) if a.path == name),
                        None)
            if axis is None or isinstance(axis.values, ir.ConstRange):
                return []
            return [c for item in axis.values
                    for c in _candidates(exp, item, path, depth + 1, binding)]
    return []


def _bindings(exp: ir.Experiment) -> list[dict[str, ir.Value]]:
    """The runs' values of the component-valued axes (zip groups advance together), at most
    _MAX_COMBINATIONS of them; [{}] without such axes."""
    axes = [a for a in (exp.sweep.axes if exp.sweep else ())
            if not isinstance(a.values, ir.ConstRange)
            and any(isinstance(x, ir.Comp | ir.Ref) for x in a.values)]
    groups: dict[object, list[ir.Axis]] = {}
    for a in axes:
        groups.setdefault(a.zip_group if a.zip_group is not None else id(a), []).append(a)
    choices = [range(min(len(a.values) for a in g)) for g in groups.values()]
    out = []
    for combo in itertools.islice(itertools.product(*choices), _MAX_COMBINATIONS):
        out.append({a.path: a.values[i] for g, i in zip(groups.values(), combo, strict=True)
                    for a in g})
    return out or [{}]


def _field(exp: ir.Experiment, path: str) -> ir.Field | None:
    return next((f for f in exp.fields if f.path == path), None)


def _check(exp: ir.Experiment, out: dg.Collector) -> None:
    for binding in _bindings(exp):
        _check_run(exp, out, binding)


def _check_run(exp: ir.Experiment, out: dg.Collector, binding: dict[str, ir.Value]) -> None:
    model_f, data_f = _field(exp, "model"), _field(exp, "data")
    if model_f is None:
        return
    models = _candidates(exp, model_f.value, "model", 0, binding)
    if not models:  # the model is already an error (or not known at compile time)
        return
    datas = _candidates(exp, data_f.value, "data", 0, binding) if data_f is not None else []
    obj_f = _field(exp, "objective")
    objectives = (_candidates(exp, obj_f.value, "objective", 0, binding)
                  if obj_f is not None else [])
    metrics_f = _field(exp, "metrics")
    metric_items = metrics_f.value.items if metrics_f is not None and isinstance(
        metrics_f.value, ir.ListV) else ()
    metrics = [c for item in metric_items
               for c in _candidates(exp, item, "metrics", 0, binding)]
    combos = itertools.islice(itertools.product(models, datas or [None]),
                              _MAX_COMBINATIONS)
    for model, data in combos:
        offered = set((model[0].provides if model else ()) + (data[0].provides if data else ()))
        if model is not None and data is not None:
            _need(model, set(data[0].provides), model_f.span, out, model, data, "data")
        if obj_f is not None:
            for obj in objectives:
                _need(obj, offered, obj_f.span, out, model, data)
        elif model is not None and default_objective(model[0].provides) is None:
            out.error("missing-field", model_f.span,
                      message=f"experiment {exp.name} has no objective, and model "
                              f"{model[0].name} provides {_words(model[0].provides)}, which "
                              "implies none",
                      help="set one: objective = cross_entropy (classifiers), mse (regressors) "
                           "or your own objective component")
        for metric in metrics:
            _need(metric, offered, metrics_f.span if metrics_f else model_f.span, out, model,
                  data)


def _need(user: tuple[C.Component, ir.Comp], offered: set[str], span: dg.Span,
          out: dg.Collector, model: tuple[C.Component, ir.Comp] | None,
          data: tuple[C.Component, ir.Comp] | None, source: str = "model or data") -> None:
    comp, value = user
    missing = [r for r in comp.requires if r not in offered]
    if not missing:
        return
    parts = []
    if model is not None and source != "data":
        parts.append(f"model {model[0].name} provides {_words(model[0].provides)}")
    if data is not None:
        parts.append(f"data {data[0].name} provides {_words(data[0].provides)}")
    out.error("capability-mismatch", value.span if value.span.file == span.file and
              value.span.line == span.line else span,
              message=f"{comp.name} needs a {source} that provides {_words(tuple(missing))}; "
                      + "; ".join(parts),
              help=dg.did_you_mean(comp.name, [c.name for c in C.of_kind(comp.kind)
                                               if set(c.requires) <= offered])
              or f"use a {source} that provides {_words(tuple(missing))}, or another "
                 f"{comp.kind}")


def _words(caps: tuple[str, ...]) -> str:
    return " and ".join(caps) if caps else "nothing"
