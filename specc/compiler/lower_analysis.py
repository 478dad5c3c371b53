"""``analysis { ... }``: statistics over a sweep's finished runs, lowered and type-checked.

Each statement is `name = expression` or `check expression`. Names are the experiment's metrics
(a time series per run), its sweep variables (one value per run) and earlier analysis values.
Every expression has one of these types, checked here so a mistake is a located diagnostic
before anything runs:

- ``series``: a metric; `final(m)` and `best(m)` make it a column (a bare metric where a column
  is expected means its final value);
- ``column``: one number (or word) per run: an axis, `final(m)`, arithmetic on columns;
- ``scalar``: one number over the runs: `mean`, `median`, `std`, `min`, `max`, `count`,
  `spearman`, `kendall_tau`, a fit's member;
- ``fit``: `linear_fit(x, y)`, with members `slope`, `intercept`, `r2`;
- ``rows`` / ``truth``: a comparison per run (for `when =`) / over the runs (for `check`);
- ``figure``: what the report draws: `metric_curve(m, ..., by = axis)` (metrics over steps, one
  line per run, coloured by the axis), `line(x, y, by = axis)` (per-run values, the mean over runs
  of each x, one line per value of the axis), `scatter(x, y, color = axis)`.

The values are encoded in the IR's own nodes (Note [Analysis encoding]), computed by
`specc/report/analysis.py`.
"""

from __future__ import annotations

import attrs

from specc import diagnostics as dg
from specc.compiler import ir
from specc.lang import syntax as S

# Note [Analysis encoding]: names are ir.Var("metric:m" | "axis:a" | "value:v"), a bare word
# (a component or declaration name compared with an axis) is ir.Const("word"), a call is
# ir.Op("fn:name", positional..., ir.Op("kw:when", [cond])), a fit's member is
# ir.MemberV(kind="fit"); arithmetic, comparisons and and/or/not are ir.Op as written.
REDUCERS = ("mean", "median", "std", "min", "max", "count")
SERIES = ("final", "best")
PAIRS = ("linear_fit", "spearman", "kendall_tau", "granulated_tau")
FIGURES = ("metric_curve", "line", "scatter")
FUNCTIONS = (*SERIES, *REDUCERS, *PAIRS, *FIGURES)
FIT_MEMBERS = ("slope", "intercept", "r2")
BUILTIN_SERIES = ("train_loss", "loss", "lr")


@attrs.frozen
class Typed:
    value: ir.Value
    type: str  # series, column, scalar, fit, rows, truth, word, bad


_BAD = Typed(ir.Const(value=None), "bad")


class AnalysisLowering:
    """Lower one experiment's analysis statements against its metrics and axes."""

    def __init__(self, out: dg.Collector, metrics: dict[str, str],
                 axes: dict[str, str]) -> None:
        self.out, self.metrics, self.axes = out, metrics, axes
        self.values: dict[str, str] = {}  # analysis name -> its type

    def block(self, stmts: list[S.Stmt]) -> ir.Analysis:
        steps = []
        for s in stmts:
            if isinstance(s, S.Assign) and len(s.target) == 1:
                name = s.target[0]
                if name in self.metrics or name in self.axes:
                    self.out.error("duplicate-name", s.target_span, name=name,
                                   help="a metric or sweep variable has this name; choose "
                                        "another")
                    continue
                t = self.expr(s.value)
                if t.type == "bad":
                    self.values[name] = "bad"
                    continue
                if t.type in ("rows", "word", "truth"):
                    self._mismatch(s.value, "a number, a per-run value, a fit or a figure",
                                   t.type)
                    self.values[name] = "bad"
                    continue
                self.values[name] = "column" if t.type == "series" else t.type
                value = _final(t).value if t.type == "series" else t.value
                steps.append(ir.AnalysisStep(name=name, value=value, text=_text(s.value),
                                             span=s.span))
            elif isinstance(s, S.Check):
                t = self.expr(s.expr)
                if t.type == "bad":
                    continue
                if t.type != "truth":
                    self._mismatch(s.expr, "a comparison of numbers over the runs (a mean, a "
                                   "fit's slope...)", t.type,
                                   help="a per-run comparison needs a reducer: "
                                        "check mean(x, when = ...) < 1" if t.type == "rows"
                                   else None)
                    continue
                steps.append(ir.AnalysisStep(name="", value=t.value, text=_text(s.expr),
                                             span=s.span))
            else:
                self.out.error("invalid-value", s.span,
                               message="an analysis block holds `name = expression` and "
                                       "`check expression`")
        return ir.Analysis(steps=tuple(steps))

    # ------------------------------------------------------------------ expressions
    def expr(self, e: S.Expr) -> Typed:
        match e:
            case S.Number(value=v):
                return Typed(ir.Const(value=v, span=e.span), "scalar")
            case S.String(value=v):
                return Typed(ir.Const(value=v, span=e.span), "word")
            case S.Bool(value=v):
                return Typed(ir.Const(value=v, span=e.span), "word")
            case S.Name(id=name):
                return self.name(name, e.span)
            case S.UnaryOp(op="-", operand=inner):
                t = self.expr(inner)
                if t.type in ("scalar", "column", "series"):
                    t = _final(t)
                    return Typed(ir.Op(op="neg", args=[t.value], span=e.span), t.type)
                return self._mismatch(inner, "a number", t.type)
            case S.UnaryOp(op="not", operand=inner):
                t = self.expr(inner)
                if t.type in ("rows", "truth"):
                    return Typed(ir.Op(op="not", args=[t.value], span=e.span), t.type)
                return self._mismatch(inner, "a comparison", t.type)
            case S.BinOp(op=op, left=a, right=b):
                return self.binop(e, op, self.expr(a), self.expr(b), a, b)
            case S.Call():
                return self.call(e)
            case S.Member(obj=obj, name=name):
                return self.member(e, obj, name)
        self.out.error("invalid-value", e.span,
                       message=f"{_text(e)} is not an analysis expression",
                       help="use metrics, sweep variables, numbers and the analysis functions "
                            f"({', '.join(FUNCTIONS)})")
        return _BAD

    def member(self, e: S.Expr, obj: S.Expr, name: str) -> Typed:
        """A fit's member (`fit.r2`) or a metric's (`adce.lo`: a key of the dict it gives)."""
        base = self.expr(obj)
        if base.type == "bad":
            return base
        if base.type == "series" and isinstance(base.value, ir.Var) and \
                base.value.name.startswith("metric:"):
            # a metric that returns a dict: `adce.lo`, `rule_fit.r2` (its row keys)
            return Typed(ir.Var(name=f"{base.value.name}.{name}", span=e.span), "series")
        if base.type != "fit":
            self.out.error("unknown-member", e.span, what=_text(obj), name=name,
                           help="only a fit or a metric has members: "
                                "linear_fit(...).slope, adce.lo")
            return _BAD
        if name not in FIT_MEMBERS:
            self.out.error("unknown-member", e.span, what="a linear fit", name=name,
                           help=dg.did_you_mean(name, FIT_MEMBERS)
                           or f"members: {', '.join(FIT_MEMBERS)}")
            return _BAD
        return Typed(ir.MemberV(base=base.value, name=name, kind="fit", span=e.span),
                     "scalar")

    def name(self, name: str, sp: dg.Span) -> Typed:
        if name in self.values:
            t = self.values[name]
            return _BAD if t == "bad" else Typed(ir.Var(name=f"value:{name}", span=sp), t)
        if name in self.axes:  # before the metrics: a swept `lr` is the axis, not the row's lr
            return Typed(ir.Var(name=f"axis:{self.axes[name]}", span=sp), "column")
        if name in self.metrics:
            return Typed(ir.Var(name=f"metric:{self.metrics[name]}", span=sp), "series")
        return Typed(ir.Const(value=name, span=sp), "word")  # checked where it is used

    def _word_error(self, t: Typed) -> Typed:
        word = t.value.value if isinstance(t.value, ir.Const) else "?"
        self.out.error("unknown-name", t.value.span, kind="metric, sweep variable or analysis "
                       "value", name=str(word),
                       help=dg.did_you_mean(str(word), [*self.metrics, *self.axes,
                                                        *self.values, *FUNCTIONS])
                       or f"metrics: {', '.join(self.metrics) or 'none'}; sweep variables: "
                          f"{', '.join(self.axes) or 'none'}")
        return _BAD

    def binop(self, e: S.Expr, op: str, a: Typed, b: Typed,
              ea: S.Expr, eb: S.Expr) -> Typed:
        if "bad" in (a.type, b.type):
            return _BAD
        if op in ("and", "or"):
            for t, ex in ((a, ea), (b, eb)):
                if t.type not in ("rows", "truth"):
                    return self._mismatch(ex, "a comparison", t.type)
            kind = "rows" if "rows" in (a.type, b.type) else "truth"
            return Typed(ir.Op(op=op, args=[a.value, b.value], span=e.span), kind)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            if op in ("==", "!=") and "word" in (a.type, b.type):
                other = b if a.type == "word" else a
                if other.type != "column":  # a word compares with a per-run axis value
                    return self._word_error(a if a.type == "word" else b)
                return Typed(ir.Op(op=op, args=[a.value, b.value], span=e.span), "rows")
            return self._numeric(e, op, a, b, ea, eb, ("rows", "truth"))
        return self._numeric(e, op, a, b, ea, eb, ("column", "scalar"))

    def _numeric(self, e: S.Expr, op: str, a: Typed, b: Typed, ea: S.Expr, eb: S.Expr,
                 kinds: tuple[str, str]) -> Typed:
        """Arithmetic or an ordering of two numbers: per run (the first of ``kinds``) when
        either side is per run, else over the runs."""
        for t in (a, b):
            if t.type == "word":
                return self._word_error(t)
        a, b = _final(a), _final(b)
        for t, ex in ((a, ea), (b, eb)):
            if t.type not in ("scalar", "column"):
                return self._mismatch(ex, "a number", t.type)
        kind = kinds[0] if "column" in (a.type, b.type) else kinds[1]
        return Typed(ir.Op(op=op, args=[a.value, b.value], span=e.span), kind)

    def call(self, e: S.Call) -> Typed:  # noqa: C901 - each function's arguments
        if not isinstance(e.func, S.Name) or e.func.id not in FUNCTIONS:
            name = e.func.id if isinstance(e.func, S.Name) else _text(e.func)
            self.out.error("unknown-name", e.func.span, kind="analysis function", name=name,
                           help=dg.did_you_mean(name, FUNCTIONS)
                           or f"functions: {', '.join(FUNCTIONS)}")
            return _BAD
        fn = e.func.id
        if fn in FIGURES:
            return self.figure(e, fn)
        if fn in SERIES:
            params: tuple[str, ...] = ("metric",)
        elif fn in REDUCERS:
            params = ("of", "when")
        elif fn == "granulated_tau":
            params = ("x", "y", "axes", "when")
        else:
            params = ("x", "y", "when")
        given: dict[str, tuple[S.Expr, Typed]] = {}
        axes: ir.Value | None = None
        for i, a in enumerate(e.args):
            key = a.name or (params[i] if i < len(params) else None)
            if key is None or key not in params:
                self.out.error("unknown-parameter", a.span, component=fn, name=a.name or "?",
                               help=dg.did_you_mean(a.name or "", params)
                               or f"parameters: {', '.join(params)}")
                return _BAD
            if key in given:
                self.out.error("duplicate-argument", a.span, name=key)
                return _BAD
            if key == "axes":
                axes = self.axis_list(a.value)
                if axes is None:
                    return _BAD
                given[key] = (a.value, Typed(axes, "axes"))
                continue
            given[key] = (a.value, self.expr(a.value))
        if any(t.type == "bad" for _, t in given.values()):
            return _BAD
        for p in params:
            if p != "when" and p not in given and not (fn == "count" and p == "of"):
                self.out.error("missing-argument", e.span, component=fn, name=p)
                return _BAD
        args: list[ir.Value] = []
        for p in params:
            if p not in given:
                continue
            ex, t = given[p]
            if p == "metric":
                if t.type != "series":
                    if t.type == "word":
                        return self._word_error(t)
                    return self._mismatch(ex, "a metric", t.type)
                args.append(t.value)
            elif p == "axes":
                args.append(t.value)
            elif p == "when":
                if t.type == "word":
                    return self._word_error(t)
                if t.type != "rows":
                    example = f"{next(iter(self.axes))} == ..." if self.axes else "x == 1"
                    return self._mismatch(ex, f"a comparison per run ({example})", t.type)
                args.append(ir.Op(op="kw:when", args=[t.value], span=ex.span))
            else:
                if t.type == "word":
                    return self._word_error(t)
                t = _final(t)
                if t.type != "column":
                    return self._mismatch(ex, "a per-run value (a metric, an axis, final(m))",
                                          t.type)
                args.append(t.value)
        out_type = "column" if fn in SERIES else "fit" if fn == "linear_fit" else "scalar"
        return Typed(ir.Op(op=f"fn:{fn}", args=args, span=e.span), out_type)

    def axis_list(self, e: S.Expr) -> ir.Value | None:
        """`axes = [lr, batch]`: sweep variables, as ``kw:axes`` of their keys."""
        items = e.items if isinstance(e, S.ListExpr) else None
        if not items or not all(isinstance(i, S.Name) for i in items):
            self.out.error("type-mismatch", e.span, expected="a list of sweep variables",
                           got=_text(e), help="write axes = [lr, batch]")
            return None
        keys: list[ir.Value] = []
        for i in items:
            if i.id not in self.axes:  # type: ignore[union-attr]
                self.out.error("unknown-name", i.span, kind="sweep variable",
                               name=i.id,  # type: ignore[union-attr]
                               help=dg.did_you_mean(i.id, list(self.axes))  # type: ignore
                               or f"sweep variables: {', '.join(self.axes) or 'none'}")
                return None
            keys.append(ir.Const(value=self.axes[i.id], span=i.span))  # type: ignore[union-attr]
        return ir.Op(op="kw:axes", args=keys, span=e.span)

    def figure(self, e: S.Call, fn: str) -> Typed:
        """`metric_curve(m, ..., by = a)`, `line(x, y, by = a)`, `scatter(x, y, color = a)`."""
        group = "color" if fn == "scatter" else "by"
        named = ("x", "y", group) if fn != "metric_curve" else (group,)
        args: list[ir.Value] = []
        seen: set[str] = set()
        for i, a in enumerate(e.args):
            key = a.name or (named[i] if fn != "metric_curve" and i < 2 else None)
            if key is not None and (key not in named or key in seen):
                self.out.error("unknown-parameter" if key not in named else
                               "duplicate-argument", a.span, component=fn, name=key,
                               help=dg.did_you_mean(key, named) or
                               f"parameters: {', '.join(named)}")
                return _BAD
            t = self.expr(a.value)
            if t.type == "bad":
                return _BAD
            if t.type == "word":
                return self._word_error(t)
            if key == group:
                if t.type != "column" or not isinstance(t.value, ir.Var):
                    return self._mismatch(a.value, "a sweep variable", t.type)
                args.append(ir.Op(op=f"kw:{group}", args=[t.value], span=a.span))
            elif key is None:  # metric_curve's metrics
                if t.type != "series":
                    return self._mismatch(a.value, "a metric", t.type)
                args.append(t.value)
            else:
                t = _final(t)
                if t.type != "column":
                    return self._mismatch(a.value, "a per-run value", t.type)
                args.append(ir.Op(op=f"kw:{key}", args=[t.value], span=a.span))
            if key is not None:
                seen.add(key)
        missing = [k for k in named if k != group and k not in seen]
        if missing or (fn == "metric_curve" and not any(
                not (isinstance(a, ir.Op) and a.op.startswith("kw:")) for a in args)):
            self.out.error("missing-argument", e.span, component=fn,
                           name=missing[0] if missing else "a metric")
            return _BAD
        return Typed(ir.Op(op=f"fig:{fn}", args=args, span=e.span), "figure")

    def _mismatch(self, e: S.Expr, expected: str, got: str, help: str | None = None) -> Typed:
        words = {"series": "a metric (its values over steps)", "column": "a per-run value",
                 "figure": "a figure",
                 "scalar": "a number over the runs", "fit": "a linear fit",
                 "rows": "a per-run comparison", "truth": "a comparison over the runs",
                 "word": "a word"}
        self.out.error("type-mismatch", e.span, what=f"`{_text(e)}`", expected=expected,
                       got=words.get(got, got), help=help)
        return _BAD


def _final(t: Typed) -> Typed:
    """A metric where a per-run value is expected: its final value."""
    if t.type == "series":
        return Typed(ir.Op(op="fn:final", args=[t.value], span=t.value.span), "column")
    return t


def _text(e: S.Expr) -> str:
    from specc.lang.printer import Printer

    return Printer(()).expr(e, 0)


def metric_names(metrics: ir.Value | None, decls: dict[str, ir.Value]) -> dict[str, str]:
    """What an analysis may call each metric, and the key its values have in a run's rows:
    ``loss``, ``exact_match``; a metric on another split is ``loss_train`` (rows: ``loss/train``);
    ``train_loss`` and ``lr`` are in every row."""
    names = {n: n for n in BUILTIN_SERIES}
    items = metrics.items if isinstance(metrics, ir.ListV) else ()
    for item in items:
        if isinstance(item, ir.Ref) and isinstance(decls.get(item.name), ir.Comp):
            item = decls[item.name]
        if isinstance(item, ir.Comp):
            split = item.arg("split")
            member = split.name if isinstance(split, ir.MemberV) else None
            if member in (None, "test"):
                names[item.name] = item.name
            else:
                names[f"{item.name}_{member}"] = f"{item.name}/{member}"
    return names
