"""The typed IR: frozen values and experiments with spans, JSON round-trip and a content hash."""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Iterator
from typing import Any, Union

import attrs

from specc.diagnostics import NO_SPAN, Span


def _span() -> Span:
    return attrs.field(default=NO_SPAN, eq=False, repr=False)  # type: ignore[no-any-return]


def _tuple() -> Any:
    return attrs.field(converter=tuple, factory=tuple)


Scalar = Union[int, float, str, bool, None]

# Note [Exact integers]: an int parameter takes exact integers only. A computed value that is
# not whole (`batch = 32 / 3`, `0.25 * chinchilla(m)`) is a type error, and the spec says how to
# make it whole: round() (to the nearest, halves away from zero), floor(), ceil(), or `//`.
ROUNDING: dict[str, Any] = {
    "round": lambda x: math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1),
    "floor": math.floor,
    "ceil": math.ceil,
}

# The binary operators of expressions, folded at compile time (lowering) and per run (plan).
OPERATORS: dict[str, Any] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": lambda x, y: math.floor(x // y), "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
}

# ---------------------------------------------------------------- values


@attrs.frozen(kw_only=True)
class Const:
    value: Scalar
    span: Span = _span()


@attrs.frozen(kw_only=True)
class ListV:
    items: tuple[Value, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class TupleV:
    items: tuple[Value, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class RangeV:
    lo: int
    hi: int
    span: Span = _span()


@attrs.frozen(kw_only=True)
class ConstRange:
    """The values ``lo..hi`` of a range axis, never materialized: ``seed in 0..10^18`` costs
    two integers (Note [Plan streaming]). Indexing gives ``Const`` values; ``size`` may exceed
    what ``len()`` can return, so code that sizes an axis uses :func:`axis_size`."""

    lo: int
    hi: int
    span: Span = _span()

    @property
    def size(self) -> int:
        return max(0, self.hi - self.lo + 1)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> Const:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return Const(value=self.lo + i, span=self.span)

    def __iter__(self) -> Iterator[Const]:
        return (Const(value=v, span=self.span) for v in range(self.lo, self.hi + 1))


def axis_size(values: tuple[Value, ...] | ConstRange) -> int:
    return values.size if isinstance(values, ConstRange) else len(values)


def _axis_values(values: Any) -> tuple[Value, ...] | ConstRange:
    return values if isinstance(values, ConstRange) else tuple(values)


@attrs.frozen(kw_only=True)
class ArgV:
    """A component argument; ``default`` marks one the compiler filled in."""

    name: str
    value: Value
    default: bool = attrs.field(default=False, eq=False)
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Comp:
    """A component of the catalogue with every argument resolved (defaults filled in)."""

    name: str
    kind: str
    args: tuple[ArgV, ...] = _tuple()
    span: Span = _span()
    # A component written in Python outside specc: (provider, "path" or "module", the file
    # relative to the root spec's folder or the module, its content sha256 or the distribution
    # and version, the builder function). It is
    # part of the run configuration, so editing the file changes the run hash.
    python: tuple[str, ...] = attrs.field(converter=tuple, factory=tuple)

    def arg(self, name: str) -> Value | None:
        return next((a.value for a in self.args if a.name == name), None)


@attrs.frozen(kw_only=True)
class Ref:
    """A reference to a declaration (``kind`` model, data, policy...) or an experiment."""

    kind: str
    name: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class MemberV:
    """``task.test``: a member of a declared component."""

    base: Value
    name: str
    kind: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Var:
    """A sweep or search variable, bound per run (grids) or per trial (searches)."""

    name: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Searched:
    """``searched``: the value a sweep gives the parameter of the same name."""

    name: str = ""
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Op:
    """A symbolic expression, kept when a value is only known later (run time, per trial)."""

    op: str
    args: tuple[Value, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Directed:
    direction: str
    value: Value
    span: Span = _span()


Value = Union[Const, ListV, TupleV, RangeV, Comp, Ref, MemberV, Var, Searched, Op, Directed]

# ---------------------------------------------------------------- structure


@attrs.frozen(kw_only=True)
class Origin:
    """Where a value came from, for ``specc explain``: set, default, extends, profile, import."""

    how: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.how} {self.detail}".strip()


@attrs.frozen(kw_only=True)
class Field:
    path: str
    value: Value
    origin: Origin = attrs.field(eq=False, factory=lambda: Origin(how="default"))
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Declaration:
    kind: str
    name: str
    value: Value
    origin: Origin = attrs.field(eq=False, factory=lambda: Origin(how="set"))
    span: Span = _span()


@attrs.frozen(kw_only=True)
class CheckResult:
    """A ``check`` statement and its compile-time verdict (None: only known at run time)."""

    expr: Value
    text: str
    passed: bool | None
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Checkpoints:
    every: int
    unit: str
    measures: tuple[Value, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Axis:
    """One sweep axis; axes sharing a ``zip_group`` advance together."""

    path: str
    values: tuple[Value, ...] | ConstRange = attrs.field(converter=_axis_values, factory=tuple)
    race: bool = False
    when: Value | None = None
    zip_group: int | None = None
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Sweep:
    kind: str  # "grid" or "cbs"
    axes: tuple[Axis, ...] = _tuple()
    derived: tuple[Field, ...] = _tuple()
    settings: tuple[Field, ...] = _tuple()
    span: Span = _span()

    def setting(self, name: str) -> Value | None:
        return next((f.value for f in self.settings if f.path == name), None)


@attrs.frozen(kw_only=True)
class Param:
    """A searched parameter: its distribution and an optional condition."""

    name: str
    dist: Comp
    when: Value | None = None
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Search:
    kind: str  # "optuna"
    params: tuple[Param, ...] = _tuple()
    derived: tuple[Field, ...] = _tuple()
    settings: tuple[Field, ...] = _tuple()
    span: Span = _span()

    def setting(self, name: str) -> Value | None:
        return next((f.value for f in self.settings if f.path == name), None)


@attrs.frozen(kw_only=True)
class AnalysisStep:
    """`name = value` (a value over the runs) or, with no name, a `check`."""

    name: str
    value: Value
    text: str = attrs.field(eq=False, default="")
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Analysis:
    """`analysis { ... }`: statistics over the finished runs (Note [Analysis encoding])."""

    steps: tuple[AnalysisStep, ...] = _tuple()


@attrs.frozen(kw_only=True)
class Experiment:
    name: str
    file: str = attrs.field(eq=False)  # where it is written is not part of its meaning
    decls: tuple[Declaration, ...] = _tuple()
    fields: tuple[Field, ...] = _tuple()
    checks: tuple[CheckResult, ...] = _tuple()
    checkpoints: tuple[Checkpoints, ...] = _tuple()
    sweep: Sweep | None = None
    search: Search | None = None
    analysis: Analysis | None = None
    profile: str | None = None
    extends: str | None = None
    params: int | None = None  # parameters of the model trained, when known at compile time
    # The shape of that model (through checkpoints and local config.json files), for counting;
    # derived from the declarations, so not part of the meaning.
    shape: Comp | None = attrs.field(default=None, eq=False, repr=False)
    span: Span = _span()

    def field(self, path: str) -> Value | None:
        return next((f.value for f in self.fields if f.path == path), None)

    def decl(self, name: str) -> Declaration | None:
        return next((d for d in self.decls if d.name == name), None)


@attrs.frozen(kw_only=True)
class Program:
    experiments: tuple[Experiment, ...] = _tuple()
    files: tuple[str, ...] = attrs.field(converter=tuple, factory=tuple, eq=False)

    def experiment(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)


# ---------------------------------------------------------------- JSON and hashing

_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (Const, ListV, TupleV, RangeV, ConstRange, ArgV, Comp, Ref, MemberV, Var, Searched,
              Op, Directed, Origin, Field, Declaration, CheckResult, Checkpoints, Axis, Sweep,
              Param, Search, AnalysisStep, Analysis, Experiment, Program, Span)
}


def to_data(node: Any, *, meaning_only: bool = False) -> Any:
    """Plain JSON data for a node; ``meaning_only`` drops spans and origins (for hashing)."""
    if isinstance(node, tuple):
        return [to_data(n, meaning_only=meaning_only) for n in node]
    if not attrs.has(type(node)):
        return node
    out: dict[str, Any] = {"_t": type(node).__name__}
    for f in attrs.fields(type(node)):
        if meaning_only and not f.eq:
            continue
        out[f.name] = to_data(getattr(node, f.name), meaning_only=meaning_only)
    return out


def from_data(data: Any) -> Any:
    """Inverse of :func:`to_data` (with spans and origins)."""
    if isinstance(data, list):
        return tuple(from_data(d) for d in data)
    if isinstance(data, dict) and "_t" in data:
        cls = _CLASSES[data["_t"]]
        return cls(**{k: from_data(v) for k, v in data.items() if k != "_t"})
    return data


def dumps(node: Any) -> str:
    return json.dumps(to_data(node), sort_keys=True)


def loads(text: str) -> Any:
    return from_data(json.loads(text))


def content_hash(node: Any) -> str:
    """A stable hash of meaning: spans, origins, formatting and comments do not change it."""
    text = json.dumps(to_data(node, meaning_only=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def python_key(python: tuple[str, ...]) -> dict[str, Any]:
    """The ``python`` entry of a component's configuration (none for specc's built-ins)."""
    if not python:
        return {}
    provider, key, where, version, function = python
    return {"python": {"provider": provider, key: where,
                       ("dist" if key == "module" else "sha256"): version,
                       "function": function}}


def plain(value: Value) -> Any:
    """A value as plain JSON-able data (components as ``{"name": ..., args...}``)."""
    match value:
        case Const(value=v):
            return v
        case ListV(items=items) | TupleV(items=items):
            return [plain(i) for i in items]
        case RangeV(lo=lo, hi=hi):
            return {"range": [lo, hi]}
        case Comp(name=name, args=args, python=python):
            return {"component": name, **{a.name: plain(a.value) for a in args},
                    **python_key(python)}
        case Ref(kind=kind, name=name):
            return {"ref": name, "kind": kind}
        case MemberV(base=base, name=name):
            return {"member": name, "of": plain(base)}
        case Var(name=name):
            return {"var": name}
        case Searched(name=name):
            return {"searched": name}
        case Op(op=op, args=args):
            return {"op": op, "args": [plain(a) for a in args]}
        case Directed(direction=d, value=v):
            return {d: plain(v)}
    raise AssertionError(type(value).__name__)
