"""Lowering of expressions: names, members, calls and arguments checked against the catalogue,
arithmetic folded at compile time, compile-time functions (params, chinchilla, round...).

Example:
    ``adamw(lr = 2 * 1e-3)`` becomes ``Comp("adamw", [lr=0.002, weight_decay=0.01, ...])``."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import types as T
from specc.compiler import ir
from specc.compiler import params as P
from specc.compiler.ir import ROUNDING
from specc.compiler.values import (
    _ARITH,
    _LET_IN_PROGRESS,
    Scope,
    _catalogue_names,
    _default_expr,
    _describe,
    _describe_expr,
    _enum_words,
    _in_range,
    _is_int,
    _is_num,
    _is_poison,
    _kind_word,
    _list_item,
    _mismatch,
    _normalize,
    _num,
    _number_text,
    _poison,
    _value_kind,
    _walk,
    expr_text,
)
from specc.components import tasks
from specc.lang import syntax as S
from specc.lang.parser import MAX_EXPONENT

if TYPE_CHECKING:
    pass


class ExprLowering:
    """Methods of ``Lowerer`` (mixed in); they use its ``out``, ``value`` and ``expr``."""

    def value(self, e: S.Expr, t: T.Type, scope: Scope, what: str,
              spec: C.Param | None = None, span: dg.Span | None = None) -> ir.Value:
        """Lower an expression and check it against the type ``t`` (and the bounds of spec)."""
        v = self.expr(e, t, scope)
        if span is not None:
            import attrs

            v = attrs.evolve(v, span=span)
        return self.check(v, t, what, spec, literal=isinstance(e, S.Number))

    def check(self, v: ir.Value, t: T.Type, what: str, spec: C.Param | None = None,
              literal: bool = True) -> ir.Value:
        if any(_is_poison(x) for x in _walk(v)):
            return v
        problem = _mismatch(v, t)
        if problem is not None:
            hint = None
            if isinstance(v, ir.Const) and isinstance(v.value, float) and t == T.INT \
                    and not literal:  # Note [Exact integers]
                problem = f"the non-integer {v.value:g}"
                hint = "say how to make it whole: round(...), floor(...), ceil(...), or // " \
                       "for integer division"
            if isinstance(v, ir.Const) and isinstance(v.value, str) and isinstance(t, T.Kind):
                hint = "component names are written without quotes"
            if isinstance(v, ir.Const) and isinstance(v.value, str) and t in (T.INT, T.FLOAT) \
                    and _number_text(v.value):
                hint = "remove the quotes: numbers are written without them"
            self.out.error("type-mismatch", v.span, what=what, expected=str(t), got=problem,
                           help=hint)
            return v
        v = _normalize(v, t)
        if spec is not None:
            self._check_bounds(v, spec, what)
        return v

    def _check_bounds(self, v: ir.Value, spec: C.Param, what: str) -> None:
        items = v.items if isinstance(v, ir.ListV) else (v,)
        for item in items:
            if not (isinstance(item, ir.Const) and isinstance(item.value, (int, float))
                    and not isinstance(item.value, bool)):
                continue
            x = item.value
            bad = None
            if isinstance(x, float) and not math.isfinite(x):
                self.out.error("out-of-range", item.span, what=what, bound="a finite number",
                               got=_num(x), help=spec.doc or None)
                continue
            if spec.lo is not None and (x < spec.lo or (spec.lo_open and x == spec.lo)):
                bad = f"{'above' if spec.lo_open else 'at least'} {_num(spec.lo)}"
            if spec.hi is not None and (x > spec.hi or (spec.hi_open and x == spec.hi)):
                bad = f"{'below' if spec.hi_open else 'at most'} {_num(spec.hi)}"
            if bad is not None:
                bounds = []
                if spec.lo is not None:
                    bounds.append(f"{'above' if spec.lo_open else 'at least'} {_num(spec.lo)}")
                if spec.hi is not None:
                    bounds.append(f"{'below' if spec.hi_open else 'at most'} {_num(spec.hi)}")
                self.out.error("out-of-range", item.span, what=what,
                               bound=" and ".join(bounds), got=_num(x), help=spec.doc or None)

    def expr(self, e: S.Expr, t: T.Type, scope: Scope) -> ir.Value:  # noqa: C901 - one case per expression kind: a dispatch table
        sp = e.span
        match e:
            case S.Number(value=v):
                return ir.Const(value=v, span=sp)
            case S.String(value=v):
                return ir.Const(value=v, span=sp)
            case S.Bool(value=v):
                return ir.Const(value=v, span=sp)
            case S.NoneLit():
                return ir.Const(value=None, span=sp)
            case S.ListExpr(items=items):
                item_t = t.item if isinstance(t, T.ListOf) else _list_item(t)
                return ir.ListV(items=[self.expr(i, item_t, scope) for i in items], span=sp)
            case S.TupleExpr(items=items):
                types = t.items if isinstance(t, T.TupleOf) and len(t.items) == len(items) \
                    else [T.ANY] * len(items)
                return ir.TupleV(items=[self.expr(i, it, scope) for i, it in zip(items, types,
                                                                                   strict=True)],
                                 span=sp)
            case S.Range(lo=lo, hi=hi):
                a, b = self.expr(lo, T.INT, scope), self.expr(hi, T.INT, scope)
                if not (_is_int(a) and _is_int(b)):
                    self.out.error("type-mismatch", sp, what="a range", expected="integer ends",
                                   got=f"{_describe(a)}..{_describe(b)}")
                    return ir.RangeV(lo=0, hi=0, span=sp)
                assert isinstance(a, ir.Const) and isinstance(b, ir.Const)
                if int(b.value) < int(a.value):  # type: ignore[arg-type]
                    self.out.error("bad-range", sp, lo=a.value, hi=b.value)
                return ir.RangeV(lo=int(a.value), hi=int(b.value), span=sp)  # type: ignore[arg-type]
            case S.UnaryOp(op="-", operand=o):
                v = self.expr(o, t, scope)
                if isinstance(v, ir.Const) and _is_num(v.value):
                    return ir.Const(value=-v.value, span=sp)  # type: ignore[operator]
                if isinstance(v, ir.Comp | ir.Ref | ir.MemberV):
                    self.out.error("type-mismatch", sp, what="'-'", expected="a number",
                                   got=_describe(v))
                    return _poison(sp)
                return ir.Op(op="neg", args=[v], span=sp)
            case S.UnaryOp(operand=o):
                v = self.expr(o, T.BOOL, scope)
                if isinstance(v, ir.Const) and isinstance(v.value, bool):
                    return ir.Const(value=not v.value, span=sp)
                return ir.Op(op="not", args=[v], span=sp)
            case S.BinOp():
                return self.binop(e, scope)
            case S.Directed(direction=d, value=inner):
                return ir.Directed(direction=d, value=self.expr(inner, T.Kind("metric"), scope),
                                   span=sp)
            case S.Name(id=name):
                return self.name(name, t, scope, sp)
            case S.Member():
                return self.member(e, scope)
            case S.Call():
                return self.call(e, t, scope)
        raise AssertionError(type(e).__name__)

    def binop(self, e: S.BinOp, scope: Scope) -> ir.Value:
        operand_t = T.BOOL if e.op in ("and", "or") else T.ANY
        a, b = self.expr(e.left, operand_t, scope), self.expr(e.right, operand_t, scope)
        if _is_poison(a) or _is_poison(b):
            return _poison(e.span)
        if isinstance(a, ir.Const) and isinstance(b, ir.Const):
            x, y = a.value, b.value
            if e.op in ("and", "or"):
                return ir.Const(value=(x and y) if e.op == "and" else (x or y), span=e.span)
            if e.op in ("==", "!="):
                return ir.Const(value=_ARITH[e.op](x, y), span=e.span)
            if not (_is_num(x) and _is_num(y)):
                if e.op == "+" and isinstance(x, str) and isinstance(y, str):
                    return ir.Const(value=x + y, span=e.span)
                self.out.error("type-mismatch", e.span, what=f"'{e.op}'", expected="numbers",
                               got=f"{_describe(a)} and {_describe(b)}")
                return _poison(e.span)
            if e.op in ("/", "//") and y == 0:
                self.out.error("division-by-zero", e.right.span)
                return _poison(e.span)
            try:
                result = _ARITH[e.op](x, y)
            except OverflowError:
                result = math.inf
            if not _in_range(result):
                self.out.error("number-too-large", e.span, what="the result", how="large",
                               limit=f"1e{MAX_EXPONENT} in magnitude")
                return _poison(e.span)
            if isinstance(result, float) and result.is_integer() and e.op == "/" \
                    and isinstance(x, int) and isinstance(y, int):
                result = int(result)
            return ir.Const(value=result, span=e.span)
        components = [x for x in (a, b) if isinstance(x, ir.Comp | ir.Ref | ir.MemberV)]
        if components and e.op in ("+", "-", "*", "/", "//"):
            kinds = {_value_kind(x) for x in components}
            self.out.error("type-mismatch", e.span, what=f"'{e.op}'", expected="numbers",
                           got=f"{_describe(a)} and {_describe(b)}",
                           help="a metric is a component, not a number: list metrics one by "
                                "one (metrics = [loss, perplexity])" if "metric" in kinds
                           else "arithmetic applies to numbers and sweep variables")
            return _poison(e.span)
        if isinstance(a, ir.Ref) and isinstance(b, ir.Ref) and e.op in ("==", "!="):
            # Two declarations are known at compile time (a swept field would be a Var).
            same = (a.kind, a.name) == (b.kind, b.name)
            return ir.Const(value=same if e.op == "==" else not same, span=e.span)
        return ir.Op(op=e.op, args=[a, b], span=e.span)

    def name(self, name: str, t: T.Type, scope: Scope, sp: dg.Span) -> ir.Value:

        if name == "searched":
            return ir.Searched(name="", span=sp)
        if name in scope.vars:
            return ir.Var(name=name, span=sp)
        if name in scope.swept:
            return ir.Var(name=scope.swept[name], span=sp)
        if name in scope.lets:
            return attrs.evolve(scope.lets[name], span=sp)
        if name in scope.decls:
            return ir.Ref(kind=scope.decls[name][0], name=name, span=sp)
        if name in self.global_lets:
            return attrs.evolve(self._global_let(name), span=sp)
        if name in self.global_decls:
            return ir.Ref(kind=self.global_decls[name][0].kind, name=name, span=sp)
        if name in self.experiments:
            return ir.Ref(kind="experiment", name=name, span=sp)
        enum_words = _enum_words(t)
        if name in enum_words:
            return ir.Const(value=name, span=sp)
        comp = _lookup(name, t)
        if comp is not None and comp.kind != "function":
            return self.call(S.Call(func=S.Name(id=name, span=sp), args=(), span=sp), t, scope,
                             bare=True)
        if comp is None and self._collision(name, sp, t):
            return _poison(sp)
        if enum_words and not T.kinds_in(t):
            self.out.error("invalid-value", sp, message=f'"{name}" is not {t}',
                           help=dg.did_you_mean(name, enum_words))
            return _poison(sp)
        candidates = [*scope.names(), *enum_words, *_catalogue_names(t)]
        self.out.error("unknown-name", sp, kind=_kind_word(t), name=name,
                       help=dg.did_you_mean(name, candidates))
        return _poison(sp)

    def _global_let(self, name: str) -> ir.Value:
        let, file = self.global_lets[name]
        key = (file, name)
        if key not in self._let_values:
            self._let_values[key] = _LET_IN_PROGRESS
            self._let_values[key] = self.value(let.value, T.ANY, Scope(self, file),
                                               f'let "{name}"')
        elif self._let_values[key] is _LET_IN_PROGRESS:  # its own value needs it: a cycle
            self.out.error("let-cycle", let.name_span, name=name,
                           help="a let cannot use itself, directly or through other lets")
            self._let_values[key] = _poison(let.span)
        return self._let_values[key]

    def member(self, e: S.Member, scope: Scope) -> ir.Value:
        qualified = _qualified(e, scope)
        if qualified is not None and C.lookup(qualified) is not None:  # `research.dsm`
            return self.call(S.Call(func=S.Name(id=qualified, span=e.span), args=(),
                                    span=e.span), T.ANY, scope, bare=True)
        if isinstance(e.obj, S.Name) and e.obj.id == "train" and "train" not in scope.decls \
                and scope.swept.get(e.name) == f"train.{e.name}":
            return ir.Var(name=f"train.{e.name}", span=e.span)  # a swept train field
        base = self.expr(e.obj, T.ANY, scope)
        if _is_poison(base):
            return base
        target: ir.Value | None = base
        if isinstance(base, ir.Ref):
            target = self._decl_value(base, scope)
            if target is not None and _is_poison(target):
                return _poison(e.span)  # its declaration's own error says it all
        if isinstance(target, ir.Comp):
            comp = C.lookup(target.name, target.kind)
            members = dict(comp.members) if comp is not None else {}
            if e.name in members:
                return ir.MemberV(base=base, name=e.name, kind=members[e.name], span=e.span)
            help_ = dg.did_you_mean(e.name, members) or (
                f"members: {', '.join(members)}" if members else None)
            if e.name == "circuit" and target.kind == "data":
                help_ = "circuit pairs need a task with `corrupt = ...`"
            self.out.error("unknown-member", e.span, what=f"{target.name}()", name=e.name,
                           help=help_)
            return _poison(e.span)
        self.out.error("unknown-member", e.span, what=_describe(base), name=e.name)
        return _poison(e.span)

    def _decl_value(self, ref: ir.Ref, scope: Scope) -> ir.Value | None:
        if ref.name in scope.decls:
            kind, expr, _ = scope.decls[ref.name]
            return self._quiet(lambda: self.expr(expr, T.Kind(kind), scope))
        if ref.name in self.global_decls:
            d, file = self.global_decls[ref.name]
            return self._quiet(lambda: self.expr(d.value, T.Kind(d.kind), Scope(self, file)))
        return None

    def _quiet(self, fn: Callable[[], ir.Value]) -> ir.Value:
        """Evaluate without reporting (the declaration itself reports its own errors once)."""
        saved = self.out
        self.out = dg.Collector()
        try:
            return fn()
        finally:
            self.out = saved

    def call(self, e: S.Call, t: T.Type, scope: Scope, bare: bool = False) -> ir.Value:
        qualified = _qualified(e.func, scope)
        if qualified is not None:
            e = attrs.evolve(e, func=S.Name(id=qualified, span=e.func.span))
        if not isinstance(e.func, S.Name):
            self.out.error("type-mismatch", e.func.span, what="a call", expected="a component "
                           "name", got=_describe_expr(e.func))
            return ir.Const(value=None, span=e.span)
        name = e.func.id
        comp = _lookup(name, t)
        if comp is None and self._collision(name, e.func.span, t):
            return _poison(e.span)
        own = scope.decls.get(name)
        if comp is None and own is not None and isinstance(own[1], S.Call) and isinstance(
                own[1].func, S.Name) and own[1].func.id == name:
            own = None  # `data wikitext = wikitext()`: an unknown component, not a call of itself
        if comp is None:
            if (name in scope.decls and own is not None) or (
                    name in self.global_decls and name not in scope.decls):
                self.out.error("type-mismatch", e.span, what=f'"{name}"', expected="a component",
                               got="a declared name, which cannot be called",
                               help=f"use `{name}` without arguments")
                return _poison(e.span)
            self.out.error("unknown-name", e.func.span, kind=_kind_word(t, "component"),
                           name=name, help=dg.did_you_mean(
                               name, _catalogue_names(t) or [c.name for c in
                                                             C.all_components()]))
            return _poison(e.span)
        args = self.arguments(comp, e, scope, bare)
        if comp.kind == "function":
            return self.function(comp, args, e, scope)
        value = ir.Comp(name=name, kind=comp.kind, args=args, span=e.span,
                        python=self._python(comp))
        if name in tasks.CORRUPTIONS:
            self._check_task(value)
        return value

    def _collision(self, name: str, span: dg.Span, t: T.Type) -> bool:
        """A name two providers define: an error naming both (and the qualified forms)."""
        found = _of_kinds(C.active().providers(name), t)
        if len(found) < 2:
            return False
        self.out.error("component-collision", span, name=name,
                       providers=" and ".join(
                           c.origin.provider if c.origin.provider == "specc"
                           else f"{c.origin.provider} ({c.origin.where()})" for c in found),
                       help="pick one with its qualified name: " + " or ".join(
                           f"{c.qualified}(...)" for c in found))
        return True

    def _python(self, comp: C.Component) -> tuple[str, ...]:
        """Where the run finds a component that is not specc's own (Note [Component origin])."""
        o = comp.origin
        if o.provider == "specc":
            return ()
        if o.module:
            return (o.provider, "module", o.module, o.dist, o.function)
        root = Path(os.path.realpath(self.loaded.root)).parent
        rel = os.path.relpath(os.path.realpath(o.path), root)
        return (o.provider, "path", Path(rel).as_posix(), o.sha256, o.function)

    def _check_task(self, task: ir.Comp) -> None:
        """A synthetic task supports the corruption it is given, and has as many distinct
        examples as `train + test` ask for (counted in closed form, at the data line)."""
        corrupt = task.arg("corrupt")
        supported = tasks.CORRUPTIONS[task.name]
        if isinstance(corrupt, ir.Comp) and corrupt.name not in supported:
            self.out.error("invalid-value", corrupt.span,
                           message=f"{task.name}() has no {corrupt.name} corruption",
                           help=f"{task.name}() supports: {', '.join(supported)}")
        args = {a.name: a.value for a in task.args}
        if not all(isinstance(v, ir.Const | ir.ListV) for k, v in args.items()
                   if k in ("max", "ops", "inner", "outer", "kind", "train", "test")):
            return  # swept: checked per run at run time
        cfg = {k: ir.plain(v) for k, v in args.items() if not isinstance(v, ir.Comp)}
        if not all(isinstance(cfg.get(k), int) for k in ("max", "train", "test")):
            return  # a mistyped argument is already reported
        try:
            have = tasks.distinct_examples({"component": task.name, **cfg})
            want = int(cfg["train"]) + int(cfg["test"])
        except (KeyError, TypeError, ValueError):
            return  # an argument is already reported
        if want > have:
            self.out.error("invalid-value", task.span,
                           message=f"{task.name}() has {have:,} distinct examples with these "
                                   f"settings, fewer than train + test = {cfg['train']:,} + "
                                   f"{cfg['test']:,}",
                           help="lower train/test, or widen the task (a larger max, more ops)")

    def arguments(self, comp: C.Component, e: S.Call, scope: Scope,
                  bare: bool) -> list[ir.ArgV]:
        given: dict[str, ir.ArgV] = {}
        positional = list(comp.params)
        if comp.variadic is not None:
            values = []
            for a in e.args:
                if a.name is not None:
                    self.out.error("unknown-parameter", a.span, component=comp.name, name=a.name,
                                   help=f"{comp.name}() takes only positional values")
                    continue
                values.append(self.value(a.value, comp.variadic.type, scope,
                                         f"{comp.name}()"))
            return [ir.ArgV(name=comp.variadic.name, value=ir.ListV(items=values, span=e.span),
                            span=e.span)]
        seen_kw = False
        for i, a in enumerate(e.args):
            if a.name is None:
                if seen_kw or i >= len(positional):
                    self.out.error("too-many-arguments", a.span, component=comp.name,
                                   max=len(positional) if not seen_kw else i,
                                   help="name the argument: " + ", ".join(
                                       f"{p.name} = ..." for p in positional) if positional
                                   else f"{comp.name} takes no arguments")
                    continue
                p = positional[i]
            else:
                seen_kw = True
                p_or_none = comp.param(a.name)
                if p_or_none is None:
                    known = [p.name for p in comp.params]
                    self.out.error("unknown-parameter", a.span, component=comp.name, name=a.name,
                                   help=dg.did_you_mean(a.name, known)
                                   or (f"parameters: {', '.join(known)}" if known
                                       else f"{comp.name} takes no parameters"))
                    continue
                p = p_or_none
            if p.name in given:
                self.out.error("duplicate-argument", a.span, name=p.name)
                continue
            value = self.value(a.value, p.type, scope, f"{comp.name}({p.name})", p)
            if isinstance(value, ir.Searched):
                value = ir.Searched(name=p.name, span=value.span)
            given[p.name] = ir.ArgV(name=p.name, value=value, span=a.span)
        out = []
        for p in comp.params:
            if p.name in given:
                out.append(given[p.name])
            elif p.default == C.REQUIRED:
                self.out.error("missing-argument", e.span, component=comp.name, name=p.name,
                               help=f"{p.name}: {p.doc}" + (
                                   f"; write {comp.name}({p.name} = ...)" if bare else ""))
            else:
                value = self.value(_default_expr(p.default), p.type, scope,
                                   f"{comp.name}({p.name})", p, span=e.span)
                out.append(ir.ArgV(name=p.name, value=value, default=True, span=e.span))
        return out

    def function(self, comp: C.Component, args: list[ir.ArgV], e: S.Call,
                 scope: Scope) -> ir.Value:
        values = {a.name: a.value for a in args}
        if comp.name in ROUNDING:  # Note [Exact integers]
            x = values.get("x")
            if isinstance(x, ir.Const) and _is_num(x.value):
                return ir.Const(value=ROUNDING[comp.name](x.value), span=e.span)
            return ir.Op(op=comp.name, args=[a.value for a in args], span=e.span)
        if comp.name in ("params", "chinchilla", "flops"):
            target = values.get("of", values.get("model"))
            n = self.count_params(target, scope, e, embeddings=comp.name != "chinchilla")
            if n is None:
                return ir.Op(op=comp.name, args=[a.value for a in args], span=e.span)
            if comp.name == "chinchilla":
                n *= 20  # tokens per non-embedding parameter
            elif comp.name == "flops":
                tokens = values.get("tokens")
                if not (isinstance(tokens, ir.Const) and _is_num(tokens.value)):
                    return ir.Op(op="flops", args=[a.value for a in args], span=e.span)
                n = 6 * n * int(tokens.value)  # type: ignore[arg-type]
            return ir.Const(value=n, span=e.span)
        return ir.Op(op=comp.name, args=[a.value for a in args], span=e.span)

    def count_params(self, target: ir.Value | None, scope: Scope, e: S.Call,
                     embeddings: bool = True) -> int | None:
        count = P.model_params if embeddings else P.non_embedding_params
        if not isinstance(target, ir.Ref):
            if isinstance(target, ir.Comp) and target.kind == "model":
                model = self.resolve_model(target, scope.file)
                return count(model) if model is not None else None
            return None
        value = self._decl_value(target, scope)
        if not isinstance(value, ir.Comp):
            return None
        if value.kind == "model":
            model = self.model_comp(value, scope)
            n = count(model) if model is not None else None
            if n is None:
                self.out.error("not-constant", e.span, what=f"params({target.name})",
                               help="parameter counts are known for models built from a "
                               "config (gpt2, pythia, llama), checkpoints of them, and "
                               "pretrained models in a local directory with a config.json")
            return n
        if value.kind == "policy":
            if scope.model is None:
                self.out.error("not-constant", e.span, what=f"params({target.name})",
                               help="the model's shape is not known: build it from a config, "
                                    "or give pretrained() a local directory with a config.json "
                                    "(a hub id's shape is not read at check time)")
                return None
            n = P.policy_params(value, scope.model)
            if n is None:
                self.out.error("not-constant", e.span, what=f"params({target.name})",
                               help=f"{value.name} has no compile-time parameter count")
            return n
        return None

    def model_comp(self, value: ir.Value | None, scope: Scope) -> ir.Comp | None:
        """The model component a value names (through declarations and checkpoints), with the
        shapes local files give (Note [Shapes of local models]); None when unknown."""
        if isinstance(value, ir.Ref):
            value = self._decl_value(value, scope)
        if isinstance(value, ir.Comp) and value.kind == "model":
            return self.resolve_model(value, scope.file)
        return None

    def resolve_model(self, model: ir.Comp, file: str) -> ir.Comp | None:
        """Follow ``checkpoint(exp)`` to the model component that experiment trains."""
        seen: set[str] = set()
        while model.name == "checkpoint":
            ref = model.arg("experiment")
            if not isinstance(ref, ir.Ref) or ref.name in seen:
                return None
            seen.add(ref.name)
            found = self._experiment_model(ref.name)
            if found is None:
                return None
            model = found
        return P.with_local_shapes(model, Path(file).parent)

    def _experiment_model(self, name: str) -> ir.Comp | None:
        if name in self._models:
            return self._models[name]
        if name in self._lowering_models or name not in self.experiments:
            return None
        self._lowering_models.add(name)
        exp, file = self.experiments[name]
        scope = Scope(self, file)
        result = None
        for s in self._quiet_flatten(exp):
            if isinstance(s, S.Decl):
                scope.decls[s.name] = (s.kind, s.value, s)
        for s in self._quiet_flatten(exp):
            if isinstance(s, S.Decl) and s.kind == "model":
                v = self._quiet(lambda s=s: self.expr(s.value, T.Kind("model"), scope))
                result = self.model_comp(v, scope)
                break
        self._models[name] = result
        return result

    def _quiet_flatten(self, exp: S.Experiment) -> list[S.Stmt]:
        saved, self.out = self.out, dg.Collector()
        try:
            return self._flatten(exp, [exp.name])
        finally:
            self.out = saved

    def _explain_check(self, e: S.Expr, scope: Scope) -> str:
        if isinstance(e, S.BinOp):
            left = self._quiet(lambda: self.expr(e.left, T.ANY, scope))
            right = self._quiet(lambda: self.expr(e.right, T.ANY, scope))
            return (f"{expr_text(e)} is false ({expr_text(e.left)} = {_describe(left)}, "
                    f"{expr_text(e.right)} = {_describe(right)})")
        return f"{expr_text(e)} is false"


def _qualified(e: S.Expr, scope: Scope) -> str | None:
    """``provider.name`` written as a member expression: a qualified component name (unless
    ``provider`` is a name the spec defines)."""
    if isinstance(e, S.Member) and isinstance(e.obj, S.Name) and \
            e.obj.id not in set(scope.names()):
        name = f"{e.obj.id}.{e.name}"
        return name if C.active().providers(name) else None
    return None


def _of_kinds(found: list[C.Component], t: T.Type) -> list[C.Component]:
    """The providers of a name whose kind the expected type admits (all when it admits any)."""
    kinds = T.kinds_in(t)
    mine = [c for c in found if c.kind in kinds]
    return mine if kinds and mine else found


def _lookup(name: str, t: T.Type) -> C.Component | None:
    """A name's component; when several providers define it, the one of the expected kind."""
    comp = C.lookup(name)
    if comp is None:
        found = _of_kinds(C.active().providers(name), t)
        comp = found[0] if len(found) == 1 else None
    return comp
