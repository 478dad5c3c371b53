"""Lowering of the sweep, search and checkpoints blocks, and the checks over their variables
(unused axes, `when` conditions, member paths, CBS settings).

Example:
    ``sweep grid { lr in [1e-3, 3e-3] }`` becomes ``Sweep(axes=[Axis("lr", [1e-3, 3e-3])])``;
    an axis nothing uses is a ``sweep-unused`` error at its line."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import schema
from specc.catalogue import types as T
from specc.compiler import ir
from specc.compiler.values import (
    Scope,
    _default_expr,
    _describe,
    _describe_expr,
    _field_path,
    _is_num,
    _is_poison,
    _samples,
    _walk,
)
from specc.lang import syntax as S
from specc.store.urls import redact, storage_problem

if TYPE_CHECKING:
    pass


class SweepLowering:
    """Methods of ``Lowerer`` (mixed in); they use its ``out``, ``value`` and ``expr``."""

    def _override_setting(self, s: S.Assign, sweep: ir.Sweep | None, search: ir.Search | None,
                          scope: Scope, prof: S.Profile) -> tuple[ir.Sweep | None,
                                                                  ir.Search | None]:
        import attrs

        block = sweep if s.target[0] == "sweep" else search
        if block is None:
            self.out.error("unknown-field", s.target_span, name=".".join(s.target),
                           block=f"profile {prof.name}",
                           help=f"this experiment has no {s.target[0]} block")
            return sweep, search
        params = schema.BLOCKS[(s.target[0], block.kind)]
        spec = schema.field(params, s.target[1])
        if spec is None:
            self.out.error("unknown-field", s.target_span, name=s.target[1],
                           block=f"{s.target[0]} {block.kind}",
                           help=dg.did_you_mean(s.target[1], [p.name for p in params]))
            return sweep, search
        value = self.value(s.value, spec.type, scope, ".".join(s.target), spec)
        field = ir.Field(path=s.target[1], value=value, span=s.span,
                         origin=ir.Origin(how="profile", detail=f"{prof.name} at {s.span}"))
        settings = (*(f for f in block.settings if f.path != s.target[1]), field)
        if isinstance(block, ir.Sweep):
            return attrs.evolve(block, settings=settings), search
        return sweep, attrs.evolve(block, settings=settings)

    def _bind_searched(self, fields: dict[str, ir.Field], sweep: ir.Sweep | None,
                       search: ir.Search | None) -> None:
        bound = set()
        if sweep is not None:
            bound |= {a.path for a in sweep.axes}
        if search is not None:
            bound |= {p.name for p in search.params}
        for f in fields.values():
            for s in _walk(f.value):
                if isinstance(s, ir.Searched) and s.name not in bound:
                    self.out.error("search-unbound", s.span, name=s.name,
                                   help=f"add `{s.name} in [...]` to a sweep, or "
                                   f"`{s.name} ~ ...` to a search")

    def _check_unused_variables(self, decls: list[ir.Declaration], fields: list[ir.Field],
                                sweep: ir.Sweep | None, search: ir.Search | None,
                                checks: list[ir.CheckResult],
                                checkpoints: list[ir.Checkpoints]) -> None:
        """A sweep axis or searched parameter that sets no field and that nothing refers to
        would plan runs with identical configurations: an error at the axis, with a hint
        naming the argument of the same name it was probably meant for.

        Example:
            ``lr in [1e-3, 3e-3]`` beside ``optimizer = adamw(lr = 1e-3)``.
        """
        values: list[ir.Value] = [d.value for d in decls] + [f.value for f in fields]
        variables: list[tuple[str, dg.Span]] = []
        if sweep is not None:
            values += [f.value for f in (*sweep.derived, *sweep.settings)]
            values += [a.when for a in sweep.axes if a.when is not None]
            values += [v for a in sweep.axes if not isinstance(a.values, ir.ConstRange)
                       for v in a.values]
            for a in sweep.axes:
                if _field_path(a.path) is not None:
                    continue
                if "." in a.path:  # a member: train.optimizer.weight_decay
                    self._check_member_path(a.path, a.span, fields, decls)
                else:
                    variables.append((a.path, a.span))
        if search is not None:
            values += [f.value for f in (*search.derived, *search.settings)]
            values += [p.dist for p in search.params]
            values += [p.when for p in search.params if p.when is not None]
            variables += [(p.name, p.span) for p in search.params
                          if _field_path(p.name) is None]
        values += [c.expr for c in checks] + [m for c in checkpoints for m in c.measures]
        used = {x.name for v in values for x in _walk(v) if isinstance(x, ir.Var | ir.Searched)}
        self._check_conditional_arguments(values, sweep, search)
        for name, span in variables:
            if name in used:
                continue
            where = next((f"{x.name}({name} = ...) at {x.span}" for v in values
                          for x in _walk(v) if isinstance(x, ir.Comp)
                          and any(a.name == name and not a.default for a in x.args)), None)
            self.out.error("sweep-unused", span, name=name,
                           help=f"pass it where it was meant, e.g. `{name} = {name}` in "
                                f"{where}" if where else
                                f"refer to it (`... = {name}`) or remove the axis")

    def _check_conditional_arguments(self, values: list[ir.Value], sweep: ir.Sweep | None,
                                     search: ir.Search | None) -> None:
        """A variable switched off by its `when` would leave an argument that uses it unbound
        in those runs: an error at the variable, with the member path that keeps a default."""
        whens = ([a.when for a in sweep.axes] if sweep is not None else []) + (
            [p.when for p in search.params] if search is not None else [])
        conditions = {id(w) for w in whens if w is not None}
        conditional = {a.path: a.span for a in (sweep.axes if sweep is not None else ())
                       if a.when is not None and _field_path(a.path) is None}
        conditional |= {p.name: p.span for p in (search.params if search is not None else ())
                        if p.when is not None and _field_path(p.name) is None}
        for v in values:
            if id(v) in conditions:
                continue
            for x in _walk(v):
                for arg in x.args if isinstance(x, ir.Comp) else ():
                    if isinstance(arg.value, ir.Var | ir.Searched) and \
                            arg.value.name in conditional:
                        name = arg.value.name
                        self.out.error(
                            "sweep-conflict", conditional.pop(name),
                            message=f'"{name}" has a `when`, so some runs have no value for '
                                    f"it, but {x.name}({arg.name} = {name}) needs one",
                            help=f"sweep the argument itself: `train.<field>.{arg.name} in "
                                 "[...] when ...` keeps its default where the condition is "
                                 "false")

    def _check_member_path(self, path: str, span: dg.Span, fields: list[ir.Field],
                           decls: list[ir.Declaration]) -> None:
        """A swept member names an argument of the component a train field holds
        (`train.optimizer.weight_decay`); anything else would be written nowhere."""
        parts = path.split(".")
        by_path = {f.path: f.value for f in fields}
        holder = by_path.get(".".join(parts[:2])) if len(parts) == 3 else None
        if isinstance(holder, ir.Ref):
            holder = next((d.value for d in decls if d.name == holder.name), holder)
        if isinstance(holder, ir.Comp):
            names = [a.name for a in holder.args]
            if parts[2] in names:
                return
            self.out.error("unknown-field", span, name=parts[2], block=f"{holder.name}()",
                           help=dg.did_you_mean(parts[2], names)
                           or f"its arguments: {', '.join(names)}")
            return
        self.out.error("unknown-field", span, name=path, block="the experiment",
                       help="sweep a field (train.batch, seed, policy), a member of a train "
                            "field's component (train.optimizer.weight_decay), or a variable "
                            "the spec uses (lr, with `lr = lr`)")

    def sweep(self, block: S.Block, scope: Scope) -> ir.Sweep:
        kind = block.variant or "grid"
        params = schema.BLOCKS[("sweep", kind)]
        axes: list[ir.Axis] = []
        derived: list[ir.Field] = []
        settings: list[ir.Field] = []
        seen: dict[str, S.Stmt] = {}
        group = 0
        for s in block.body:
            if isinstance(s, S.Zip):
                group += 1
                lengths = set()
                for a in s.axes:
                    ax = self.axis(a, scope, seen, group)
                    if ax is not None:
                        axes.append(ax)
                        lengths.add(ir.axis_size(ax.values))
                if len(lengths) > 1:
                    self.out.error("sweep-conflict", s.span,
                                   message="zip() needs axes of equal length, got "
                                   + ", ".join(str(n) for n in sorted(lengths)))
            elif isinstance(s, S.Axis):
                ax = self.axis(s, scope, seen, None)
                if ax is not None:
                    axes.append(ax)
            elif isinstance(s, S.Assign):
                self._block_assign(s, params, f"sweep {kind}", scope, derived, settings)
            else:
                self.out.error("invalid-value", s.span,
                               message=f"sweep {kind} holds axes (`x in [...]`), zip(...) and "
                               "`name = value`")
        for p in params:
            if p.default == C.REQUIRED and not any(f.path == p.name for f in settings):
                self.out.error("missing-argument", block.head_span, component=f"sweep {kind}",
                               name=p.name, help=f"add `{p.name} = ...`: {p.doc}")
        settings.extend(self._defaults(params, settings, scope, block.head_span))
        if kind == "cbs" and not any(a.path == "train.batch" for a in axes):
            self.out.error("missing-field", block.head_span,
                           message="sweep cbs needs a `batch in [...]` axis")
        samples = {a.path: _samples(a.values) for a in axes}
        for a in axes:
            if a.when is not None:
                self._check_when(a.when, samples)
        if kind == "cbs":
            self._check_cbs(axes, settings)
        return ir.Sweep(kind=kind, axes=axes, derived=derived, settings=settings, span=block.span)

    def _check_cbs(self, axes: list[ir.Axis], settings: list[ir.Field]) -> None:
        """The reference batch is one of the swept batches, every `loss_at` is measured on the
        reference run, and within the token budget a run is given."""
        by = {f.path: f for f in settings}
        batch = next((a for a in axes if a.path == "train.batch"), None)
        ref_f = by.get("reference")
        ref = ref_f.value.value if ref_f is not None and isinstance(ref_f.value, ir.Const) \
            else None
        if batch is not None and isinstance(ref, int) and not isinstance(batch.values,
                                                                         ir.ConstRange):
            sizes = [v.value for v in batch.values if isinstance(v, ir.Const)]
            if ref not in sizes:
                self.out.error("invalid-value", ref_f.span,  # type: ignore[union-attr]
                               message=f"the reference batch {ref} is not one of the swept "
                                       f"batches {sizes}",
                               help="the reference run is the sweep's own run at that batch: "
                                    "add it to `batch in [...]` or pick one of them")
        budget_f = by.get("max_tokens")
        budget = budget_f.value.value if budget_f is not None and isinstance(
            budget_f.value, ir.Const) else None
        target = by.get("target")
        for x in _walk(target.value) if target is not None else ():
            if not (isinstance(x, ir.Op) and x.op == "loss_at" and len(x.args) == 2):
                continue
            b, tokens = x.args
            if isinstance(b, ir.Const) and isinstance(ref, int) and b.value != ref:
                self.out.error("invalid-value", x.span,
                               message=f"loss_at(batch = {b.value}) is measured on the reference "
                                       f"run, whose batch is {ref}",
                               help="write loss_at(batch = reference, tokens = ...)")
            if isinstance(tokens, ir.Const) and _is_num(budget) and _is_num(tokens.value) \
                    and tokens.value > budget:  # type: ignore[operator]
                self.out.error("invalid-value", x.span,
                               message=f"the target is read at {tokens.value:,} tokens, beyond "
                                       f"max_tokens = {budget:,}: the reference run never "
                                       "gets there",
                               help="lower the target's tokens or raise max_tokens")

    def _check_when(self, when: ir.Value, samples: dict[str, list[ir.Value]]) -> None:
        """Note [Decided conditions]: a `when` must fold to true or false for every run. It is
        evaluated with the values the variables it names can take (a few of each); a comparison
        that does not fold (a component against a string, say) is a type error at that
        comparison, never silently true."""
        from specc.compiler.plan import _fold, _subst

        if any(_is_poison(x) for x in _walk(when)):
            return
        names = sorted({x.name for x in _walk(when) if isinstance(x, ir.Var)} & samples.keys())
        combos = itertools.islice(itertools.product(*(samples[n] for n in names)), 64)
        for combo in combos:
            env = dict(zip(names, combo, strict=True))
            folded = _fold(_subst(when, env))
            if isinstance(folded, ir.Const) and isinstance(folded.value, bool):
                continue
            bad = next((x for x in _walk(folded) if isinstance(x, ir.Op)
                        and x.op in ("==", "!=", "<", "<=", ">", ">=") and len(x.args) == 2),
                       None)
            where = bad.span if bad is not None else when.span
            got = (f"{_describe(bad.args[0])} and {_describe(bad.args[1])}" if bad is not None
                   else _describe(folded))
            self.out.error("type-mismatch", where, what="a `when` condition",
                           expected="values of the same type on both sides", got=got,
                           help="compare like with like: a component with a component "
                                "(`opt == adamw(lr = 1e-3)`), a declaration with a "
                                "declaration (`opt == fast`), a number or a string with its "
                                "own kind")
            return

    def _defaults(self, params: tuple[C.Param, ...], have: list[ir.Field], scope: Scope,
                  span: dg.Span) -> list[ir.Field]:
        out = []
        for p in params:
            if p.default == C.REQUIRED or any(f.path == p.name for f in have):
                continue
            value = self.value(_default_expr(p.default), p.type, scope, p.name, p, span=span)
            out.append(ir.Field(path=p.name, value=value, span=span,
                                origin=ir.Origin(how="default", detail=p.default)))
        return out

    def _block_assign(self, s: S.Assign, params: tuple[C.Param, ...], block: str, scope: Scope,
                      derived: list[ir.Field], settings: list[ir.Field]) -> None:
        name = ".".join(s.target)
        origin = ir.Origin(how="set", detail=f"at {s.span}")
        spec = schema.field(params, name)
        if spec is not None:
            value = self.value(s.value, spec.type, scope, f'"{name}"', spec)
            settings.append(ir.Field(path=name, value=value, origin=origin, span=s.span))
            return
        path = _field_path(name)
        if path is not None:  # an override of an experiment field per run (policy = lora(...))
            spec = schema.field(schema.TRAIN if path.startswith("train.") else schema.EXPERIMENT,
                                path.split(".")[-1])
            assert spec is not None
            value = self.value(s.value, spec.type, scope, f'"{path}"', spec)
        else:  # a derived variable (alpha = 2 * rank)
            value = self.value(s.value, T.ANY, scope, f'"{name}"')
            path = name
        derived.append(ir.Field(path=path, value=value, origin=origin, span=s.span))

    def axis(self, a: S.Axis, scope: Scope, seen: dict[str, S.Stmt],
             group: int | None) -> ir.Axis | None:
        name = ".".join(a.target)
        path = _field_path(name) or name
        if path in seen:
            self.out.error("sweep-duplicate-axis", a.target_span, name=name,
                           help=f"it is first swept at {seen[path].span}")
            return None
        seen[path] = a
        spec = schema.field(schema.TRAIN if path.startswith("train.") else schema.EXPERIMENT,
                            path.split(".")[-1]) if _field_path(name) else None
        item_type = spec.type if spec is not None else T.ANY
        values: list[ir.Value] | ir.ConstRange = []
        match a.values:
            case S.ListExpr(items=items):
                values = [self.value(i, item_type, scope, f"axis {name}", spec) for i in items]
            case S.Range():
                rng = self.value(a.values, T.RangeT(), scope, f"axis {name}")
                if isinstance(rng, ir.RangeV):  # never materialized (Note [Plan streaming])
                    values = ir.ConstRange(lo=rng.lo, hi=rng.hi, span=a.values.span)
                    if spec is not None:
                        self.check(values[0], item_type, f"axis {name}", spec)
                        self.check(values[values.size - 1], item_type, f"axis {name}", spec)
            case S.Name():  # a `let` list or range: `rank in ranks`
                named = self.expr(a.values, T.ANY, scope)
                if _is_poison(named):
                    return None  # unknown-name already says which name
                if isinstance(named, ir.ListV):
                    values = [self.check(attrs.evolve(i, span=a.values.span), item_type,
                                         f"axis {name}", spec) for i in named.items]
                elif isinstance(named, ir.RangeV):
                    values = ir.ConstRange(lo=named.lo, hi=named.hi, span=a.values.span)
                else:
                    self.out.error("type-mismatch", a.values.span, what=f"axis {name}",
                                   expected="a list [a, b] or a range lo..hi",
                                   got=_describe(named))
                    return None
            case _:
                self.out.error("type-mismatch", a.values.span, what=f"axis {name}",
                               expected="a list [a, b] or a range lo..hi",
                               got=_describe_expr(a.values))
                return None
        if not ir.axis_size(values):
            self.out.error("sweep-empty", a.values.span, name=name,
                           help="give at least one value")
            return None
        when = self.value(a.when, T.BOOL, scope, "when") if a.when is not None else None
        return ir.Axis(path=path, values=values, race=a.race, when=when, zip_group=group,
                       span=a.span)

    def search(self, block: S.Block, scope: Scope) -> ir.Search:
        params = schema.BLOCKS[("search", block.variant or "optuna")]
        found: list[ir.Param] = []
        derived: list[ir.Field] = []
        settings: list[ir.Field] = []
        seen: dict[str, S.Stmt] = {}
        for s in block.body:
            if isinstance(s, S.Dist):
                name = ".".join(s.target)
                if name in seen:
                    self.out.error("sweep-duplicate-axis", s.target_span, name=name)
                    continue
                seen[name] = s
                dist = self.value(s.dist, T.Kind("distribution"), scope, f"{name} ~")
                if isinstance(dist, ir.Comp):
                    self._check_distribution(dist, s)
                    when = self.value(s.when, T.BOOL, scope, "when") if s.when else None
                    found.append(ir.Param(name=name, dist=dist, when=when, span=s.span))
            elif isinstance(s, S.Assign):
                self._block_assign(s, params, "search optuna", scope, derived, settings)
            else:
                self.out.error("invalid-value", s.span,
                               message="search optuna holds `x ~ distribution(...)` and "
                               "`name = value`", help="grid axes go in `sweep grid`")
        for p in params:
            if p.default == C.REQUIRED and not any(f.path == p.name for f in settings):
                self.out.error("missing-argument", block.head_span, component="search optuna",
                               name=p.name, help=f"add `{p.name} = ...`: {p.doc}")
        settings.extend(self._defaults(params, settings, scope, block.head_span))
        for f in settings:
            if f.path == "objective":
                self._check_objective(f)
            if f.path == "storage" and isinstance(f.value, ir.Const) \
                    and isinstance(f.value.value, str):
                problem = storage_problem(f.value.value)
                if problem is not None:
                    self.out.error("invalid-value", f.span,
                                   message=f"storage {redact(f.value.value)!r}: {problem}",
                                   help='e.g. storage = "runs/{experiment}.journal" or '
                                        '"postgresql://user@host/db"')
        if not found:
            self.out.error("sweep-empty", block.head_span, name="search",
                           help="add a searched parameter: lr ~ loguniform(1e-5, 1e-2)")
        return ir.Search(kind=block.variant or "optuna", params=found, derived=derived,
                         settings=settings, span=block.span)

    def _check_distribution(self, dist: ir.Comp, s: S.Dist) -> None:
        lo, hi = dist.arg("lo"), dist.arg("hi")
        if (isinstance(lo, ir.Const) and isinstance(hi, ir.Const)
                and isinstance(lo.value, (int, float)) and isinstance(hi.value, (int, float))
                and lo.value >= hi.value):
            self.out.error("out-of-range", s.dist.span, what=f"{dist.name}(lo, hi)",
                           bound="lo < hi", got=f"lo = {lo.value}, hi = {hi.value}",
                           help=f"swap them: {dist.name}({hi.value}, {lo.value})")
        if dist.name == "choice" and not dist.args:
            self.out.error("sweep-empty", s.dist.span, name=".".join(s.target))

    def _check_objective(self, f: ir.Field) -> None:
        items = f.value.items if isinstance(f.value, ir.ListV) else (f.value,)
        for item in items:
            if not (isinstance(item, ir.Directed) and isinstance(item.value, ir.Comp)
                    and item.value.kind == "metric"):
                self.out.error("type-mismatch", item.span, what="objective",
                               expected="maximize <metric> or minimize <metric>",
                               got=_describe(item))

    def checkpoints(self, s: S.Checkpoints, scope: Scope) -> ir.Checkpoints:
        every = self.value(s.every, T.INT, scope, "checkpoints every",
                           C.Param("every", T.INT, "1", "", lo=1))
        if s.unit not in schema.CHECKPOINT_UNITS:
            self.out.error("unknown-name", s.unit_span, kind="unit", name=s.unit,
                           help=dg.did_you_mean(s.unit, schema.CHECKPOINT_UNITS)
                           or "units are steps, tokens, epochs")
        measures = []
        for b in s.body:
            if isinstance(b, S.Measure):
                measures.append(self.value(b.expr, T.Union_((T.Kind("circuit"),
                                                             T.Kind("metric"))), scope, "measure"))
            else:
                self.out.error("invalid-value", b.span,
                               message="a checkpoints block holds `measure <circuit or metric>`")
        n = every.value if isinstance(every, ir.Const) and isinstance(every.value, int) else 1
        return ir.Checkpoints(every=n, unit=s.unit, measures=measures, span=s.span)
