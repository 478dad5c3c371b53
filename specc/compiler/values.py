"""Rules over IR values shared by the lowering passes: what a value is and says, whether it fits
a type, its canonical form for hashing, the sweep fields, and the names a scope sees.

Example:
    ``_mismatch(Const(0.5), INT)`` is ``"0.5"``; ``_normalize(Const(8), FLOAT)`` is ``Const(8.0)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import schema
from specc.catalogue import types as T
from specc.compiler import ir
from specc.lang import syntax as S
from specc.lang.parser import MAX_EXPONENT, parse_text
from specc.lang.printer import Printer

if TYPE_CHECKING:
    from specc.compiler.lower import Lowerer

_ARITH = ir.OPERATORS
_SWEEP_BLOCKS = {("sweep", "grid"), ("sweep", "cbs"), ("search", "optuna")}
_TRAIN_NAMES = {p.name for p in schema.TRAIN}
_EXP_NAMES = {p.name for p in schema.EXPERIMENT}


@functools.cache
def _default_expr(text: str) -> S.Expr:
    module, diags = parse_text(f"let _ = {text}", "<default>")
    assert module is not None and not diags, text
    item = module.items[0]
    assert isinstance(item, S.Let)
    return item.value


def expr_text(e: S.Expr) -> str:
    return Printer(()).expr(e, 0)


class Scope:
    """Names visible in one experiment: variables, lets, declarations, then globals."""

    def __init__(self, lowerer: Lowerer, file: str) -> None:
        self.lowerer = lowerer
        self.file = file
        self.vars: set[str] = set()
        self.swept: dict[str, str] = {}  # swept field names (policy, batch) -> their paths
        self.lets: dict[str, ir.Value] = {}
        self.decls: dict[str, tuple[str, S.Expr, S.Decl]] = {}
        self.model: ir.Comp | None = None  # the experiment's model, for params(policy)

    def names(self) -> Iterable[str]:
        yield from self.vars
        yield from self.lets
        yield from self.decls
        yield from self.lowerer.globals_for(self.file)


_LET_IN_PROGRESS = ir.Const(value=None)  # a global let being lowered (finds cycles)


def _poison(span: dg.Span) -> ir.Value:
    """The value of an expression already reported as wrong: accepted everywhere, silently."""
    return ir.Op(op="error", span=span)


def _is_poison(v: ir.Value | None) -> bool:
    return isinstance(v, ir.Op) and v.op == "error"


def _ids(body: Iterable[S.Stmt]) -> set[int]:
    """The ids of statements and of the statements nested in their blocks."""
    out: set[int] = set()
    for s in body:
        out.add(id(s))
        if isinstance(s, S.Block | S.Profile | S.Checkpoints):
            out |= _ids(s.body)
    return out


def _item_name(item: S.Stmt) -> tuple[str | None, dg.Span]:
    if isinstance(item, S.Experiment | S.Decl | S.Let):
        return item.name, item.name_span
    return None, item.span


def _bound_names(s: S.Stmt) -> list[str]:
    match s:
        case S.Axis(target=t) | S.Dist(target=t):
            return [".".join(t)]
        case S.Zip(axes=axes):
            return [".".join(a.target) for a in axes]
        case S.Assign(target=t) if len(t) == 1:
            return [t[0]]
    return []


def _field_path(name: str) -> str | None:
    """The experiment field a sweep name sets: ``batch`` -> ``train.batch``; None: a variable."""
    if name in _EXP_NAMES:
        return name
    if name in _TRAIN_NAMES:
        return f"train.{name}"
    if name.startswith("train.") and name[6:] in _TRAIN_NAMES:
        return name
    return None


def _walk(v: ir.Value) -> Iterable[ir.Value]:
    yield v
    match v:
        case ir.ListV(items=items) | ir.TupleV(items=items) | ir.Op(args=items):
            for i in items:
                yield from _walk(i)
        case ir.Comp(args=args):
            for a in args:
                yield from _walk(a.value)
        case ir.Directed(value=inner) | ir.MemberV(base=inner):
            yield from _walk(inner)


def _samples(values: tuple[ir.Value, ...] | ir.ConstRange) -> list[ir.Value]:
    """A few of an axis's values, its ends included (enough to type a `when` condition)."""
    n = ir.axis_size(values)
    picks = sorted({0, n - 1, *range(min(n, 8))})
    return [values[i] for i in picks if 0 <= i < n]


def _number_text(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _in_range(x: object) -> bool:
    """A computed value a float can hold with room to spare (no inf, no NaN, no 4,000-digit
    integer that later stages cannot print)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return True
    if isinstance(x, float) and not math.isfinite(x):
        return False
    return abs(x) <= 10 ** MAX_EXPONENT


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(v: ir.Value) -> bool:
    return isinstance(v, ir.Const) and isinstance(v.value, int) and not isinstance(v.value, bool)


def _is_none(f: ir.Field | None) -> bool:
    return f is None or (isinstance(f.value, ir.Const) and f.value.value is None)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _list_item(t: T.Type) -> T.Type:
    if isinstance(t, T.Optional_):
        return _list_item(t.inner)
    if isinstance(t, T.Union_):
        for o in t.options:
            if isinstance(o, T.ListOf):
                return o.item
    return T.ANY


_enum_words = T.enum_words


def _catalogue_names(t: T.Type) -> list[str]:
    kinds = T.kinds_in(t)
    return [c.name for c in C.all_components() if c.kind in kinds]


def _kind_word(t: T.Type, fallback: str = "name") -> str:
    kinds = sorted(T.kinds_in(t) - {"searched"})
    return " or ".join(kinds) if kinds else fallback


def _describe_expr(e: S.Expr) -> str:
    return type(e).__name__.lower().replace("expr", "")


def _describe(v: ir.Value) -> str:
    match v:
        case ir.Const(value=None):
            return "none"
        case ir.Const(value=bool() as b):
            return "true" if b else "false"
        case ir.Const(value=str() as s):
            return f'the string "{s}"'
        case ir.Const(value=x):
            return _num(x) if isinstance(x, (int, float)) else repr(x)
        case ir.Comp(name=n, kind=k):
            return f"{n} ({T.article(k)})"
        case ir.Ref(name=n, kind=k):
            return f"{n} ({T.article(k)})"
        case ir.MemberV(name=n, kind=k):
            return f".{n} ({T.article(k)})"
        case ir.ListV():
            return "a list"
        case ir.TupleV():
            return "a tuple"
        case ir.RangeV():
            return "a range"
        case ir.Var(name=n):
            return f"the sweep variable {n}"
        case ir.Op(op=o):
            return f"an expression ({o})"
        case ir.Directed(direction=d):
            return f"{d} ..."
    return type(v).__name__


def _value_kind(v: ir.Value) -> str | None:
    match v:
        case ir.Comp(kind=k) | ir.Ref(kind=k) | ir.MemberV(kind=k):
            return k
    return None


def _mismatch(v: ir.Value, t: T.Type) -> str | None:  # noqa: C901 - one case per type constructor
    """None when ``v`` fits ``t``; otherwise a description of what ``v`` is."""
    if isinstance(v, ir.Var | ir.Searched):
        return None
    if isinstance(v, ir.Op):
        if v.op in ("loss_at",):
            return None if t in (T.FLOAT, T.ANY) or _accepts_float(t) else _describe(v)
        return None  # symbolic; checked when bound
    match t:
        case T.Prim(name="any"):
            return None
        case T.Prim(name=name):
            if not isinstance(v, ir.Const):
                return _describe(v)
            x = v.value
            ok = {
                "int": isinstance(x, int) and not isinstance(x, bool),
                "float": _is_num(x),
                "fraction": _is_num(x) and 0 <= x <= 1,  # type: ignore[operator]
                "str": isinstance(x, str),
                "bool": isinstance(x, bool),
            }[name]
            return None if ok else _describe(v)
        case T.Kind(name=k):
            if k == "searched":
                return _describe(v)
            return None if _value_kind(v) == k else _describe(v)
        case T.ListOf(item=item):
            if not isinstance(v, ir.ListV):
                return _describe(v)
            for i in v.items:
                bad = _mismatch(i, item)
                if bad is not None:
                    return f"a list holding {bad}"
            return None
        case T.TupleOf(items=items):
            if not isinstance(v, ir.TupleV) or len(v.items) != len(items):
                return _describe(v)
            for i, it in zip(v.items, items, strict=True):
                bad = _mismatch(i, it)
                if bad is not None:
                    return f"a tuple holding {bad}"
            return None
        case T.Enum(values=values):
            return None if isinstance(v, ir.Const) and v.value in values else _describe(v)
        case T.RangeT():
            return None if isinstance(v, ir.RangeV) else _describe(v)
        case T.Optional_(inner=inner):
            if isinstance(v, ir.Const) and v.value is None:
                return None
            return _mismatch(v, inner)
        case T.Union_(options=options):
            if any(_mismatch(v, o) is None for o in options):
                return None
            return _describe(v)
    return _describe(v)


def _normalize(v: ir.Value, t: T.Type) -> ir.Value:
    """A value in its parameter's own type, so equal meanings hash equally: an integer given
    for a float parameter (`alpha = 8`) becomes the float (`8.0`). A union that also takes an
    integer (`keep = 5%` or `keep = 20` edges) keeps it as written."""

    match t:
        case T.Prim(name="float" | "fraction"):
            if isinstance(v, ir.Const) and isinstance(v.value, int) \
                    and not isinstance(v.value, bool):
                return attrs.evolve(v, value=float(v.value))
        case T.Optional_(inner=inner):
            return _normalize(v, inner)
        case T.Union_(options=options) if T.INT not in options:
            floats = [o for o in options if _accepts_float(o)]
            return _normalize(v, floats[0]) if len(floats) == 1 else v
        case T.ListOf(item=item) if isinstance(v, ir.ListV):
            return attrs.evolve(v, items=tuple(_normalize(i, item) for i in v.items))
        case T.TupleOf(items=types) if isinstance(v, ir.TupleV) and len(types) == len(v.items):
            return attrs.evolve(v, items=tuple(_normalize(i, it)
                                               for i, it in zip(v.items, types, strict=True)))
    return v


def _accepts_float(t: T.Type) -> bool:
    match t:
        case T.Prim(name="float"):
            return True
        case T.Optional_(inner=i):
            return _accepts_float(i)
        case T.Union_(options=o) | T.TupleOf(items=o):
            return any(_accepts_float(x) for x in o)
        case T.ListOf(item=i):
            return _accepts_float(i)
    return False
