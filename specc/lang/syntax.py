"""The AST of .exp files: frozen attrs nodes, each carrying its span (left out of equality)."""

from __future__ import annotations

from typing import Union

import attrs

from specc.diagnostics import NO_SPAN, Span


def _span() -> Span:
    return attrs.field(default=NO_SPAN, eq=False, repr=False)  # type: ignore[no-any-return]


def _tuple() -> tuple:  # type: ignore[type-arg]
    return attrs.field(converter=tuple, factory=tuple)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- expressions


@attrs.frozen(kw_only=True)
class Number:
    """A number literal; ``text`` keeps the user's spelling (``10k``, ``5%``, ``3e-4``)."""

    value: int | float
    text: str
    percent: bool = False
    span: Span = _span()


@attrs.frozen(kw_only=True)
class String:
    value: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Bool:
    value: bool
    span: Span = _span()


@attrs.frozen(kw_only=True)
class NoneLit:
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Name:
    id: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Member:
    obj: Expr
    name: str
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Arg:
    """A call argument; ``name`` is None for a positional one."""

    name: str | None
    value: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Call:
    func: Expr
    args: tuple[Arg, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class ListExpr:
    items: tuple[Expr, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class TupleExpr:
    items: tuple[Expr, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Range:
    lo: Expr
    hi: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class BinOp:
    """Arithmetic (``+ - * /``), comparison (``< <= == != >= >``) or logic (``and or``)."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Directed:
    """``maximize expr`` or ``minimize expr`` (an objective)."""

    direction: str
    value: Expr
    span: Span = _span()


Expr = Union[
    Number, String, Bool, NoneLit, Name, Member, Call, ListExpr, TupleExpr, Range, BinOp,
    UnaryOp, Directed,
]

# ----------------------------------------------------------------- statements


@attrs.frozen(kw_only=True)
class Import:
    """``import "x.exp"``, or ``import python "x.py"`` (a component file)."""

    path: str
    python: bool = False
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Let:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@attrs.frozen(kw_only=True)
class Decl:
    """``model base = gpt2(...)``: a named declaration of a component kind."""

    kind: str
    name: str
    value: Expr
    span: Span = _span()
    kind_span: Span = _span()
    name_span: Span = _span()


@attrs.frozen(kw_only=True)
class Assign:
    target: tuple[str, ...] = _tuple()
    value: Expr = attrs.field(factory=NoneLit)
    span: Span = _span()
    target_span: Span = _span()


@attrs.frozen(kw_only=True)
class Block:
    """``train { ... }``, ``sweep grid { ... }``, ``search optuna { ... }``."""

    kind: str
    variant: str | None
    body: tuple[Stmt, ...] = _tuple()
    span: Span = _span()
    head_span: Span = _span()


@attrs.frozen(kw_only=True)
class Check:
    expr: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Measure:
    expr: Expr
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Checkpoints:
    every: Expr
    unit: str
    body: tuple[Stmt, ...] = _tuple()
    span: Span = _span()
    unit_span: Span = _span()


@attrs.frozen(kw_only=True)
class Profile:
    name: str
    body: tuple[Stmt, ...] = _tuple()
    span: Span = _span()
    name_span: Span = _span()


@attrs.frozen(kw_only=True)
class Axis:
    """``x in [a, b]`` (grid axis), with ``race`` and ``when cond`` modifiers."""

    target: tuple[str, ...] = _tuple()
    values: Expr = attrs.field(factory=NoneLit)
    race: bool = False
    when: Expr | None = None
    span: Span = _span()
    target_span: Span = _span()


@attrs.frozen(kw_only=True)
class Dist:
    """``x ~ loguniform(lo, hi)`` (a search distribution), optionally ``when cond``."""

    target: tuple[str, ...] = _tuple()
    dist: Expr = attrs.field(factory=NoneLit)
    when: Expr | None = None
    span: Span = _span()
    target_span: Span = _span()


@attrs.frozen(kw_only=True)
class Zip:
    axes: tuple[Axis, ...] = _tuple()
    span: Span = _span()


@attrs.frozen(kw_only=True)
class Experiment:
    name: str
    extends: str | None
    body: tuple[Stmt, ...] = _tuple()
    span: Span = _span()
    name_span: Span = _span()
    extends_span: Span = _span()


Stmt = Union[Import, Let, Decl, Assign, Block, Check, Measure, Checkpoints, Profile, Axis, Dist,
             Zip, Experiment]


@attrs.frozen(kw_only=True)
class Comment:
    text: str
    line: int
    col: int


@attrs.frozen(kw_only=True)
class Module:
    """One parsed file: its statements and (outside equality) its comments."""

    file: str
    items: tuple[Stmt, ...] = _tuple()
    comments: tuple[Comment, ...] = attrs.field(converter=tuple, factory=tuple, eq=False)
    span: Span = _span()


def children(node: object) -> list[object]:
    """The direct AST children of a node (expressions and statements), in source order."""
    out: list[object] = []
    for field in attrs.fields(type(node)):
        if field.name in ("span",) or not field.eq:
            continue
        value = getattr(node, field.name)
        if isinstance(value, tuple):
            out.extend(v for v in value if attrs.has(type(v)))
        elif attrs.has(type(value)):
            out.append(value)
    return out
