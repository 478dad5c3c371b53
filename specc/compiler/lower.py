"""Lower the AST to the IR: resolve names, type-check against the catalogue, fill defaults.

Example:
    ``policy = lora(rank = 8)`` becomes ``Field("policy", Comp("lora", "policy", [rank=8,
    alpha=none, dropout=0.0, targets=all_linear, ...]))`` with every default marked as such.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import schema
from specc.catalogue import types as T
from specc.compiler import ir
from specc.compiler import params as P
from specc.compiler.ir import ROUNDING
from specc.compiler.load_modules import Loaded
from specc.components import tasks
from specc.lang import syntax as S
from specc.lang.parser import MAX_EXPONENT, parse_text
from specc.lang.printer import Printer
from specc.store.urls import redact, storage_problem

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


class Lowerer:
    """Lowers every experiment of a loaded program; diagnostics go to ``out``."""

    def __init__(self, loaded: Loaded, out: dg.Collector, profile: str | None = None) -> None:
        self.loaded = loaded
        self.out = out
        self.profile = profile
        self.experiments: dict[str, tuple[S.Experiment, str]] = {}
        self.global_decls: dict[str, tuple[S.Decl, str]] = {}
        self.global_lets: dict[str, tuple[S.Let, str]] = {}
        self._let_values: dict[tuple[str, str], ir.Value] = {}
        self._models: dict[str, ir.Comp | None] = {}
        self._lowering_models: set[str] = set()
        self._collect_globals()

    # ------------------------------------------------------------ globals
    def _collect_globals(self) -> None:
        for path in self.loaded.visible(self.loaded.root)[::-1]:
            for item in self.loaded.modules[path].items:
                name, span = _item_name(item)
                if name is None:
                    continue
                for table in (self.experiments, self.global_decls, self.global_lets):
                    prev = table.get(name)
                    if prev is not None and prev[1] == path:
                        self.out.error("duplicate-name", span, name=name,
                                       help=f"the first definition is at {prev[0].span}")
                if isinstance(item, S.Experiment):
                    self.experiments[name] = (item, path)
                elif isinstance(item, S.Decl):
                    self.global_decls[name] = (item, path)
                elif isinstance(item, S.Let):
                    self.global_lets[name] = (item, path)

    def globals_for(self, file: str) -> Iterable[str]:
        yield from self.experiments
        yield from self.global_decls
        yield from self.global_lets

    # ------------------------------------------------------------ program
    def program(self) -> ir.Program:
        root = self.loaded.modules[self.loaded.root]
        exps = [self.experiment(item, self.loaded.root)
                for item in root.items if isinstance(item, S.Experiment)]
        if self.profile is not None and not any(e.profile for e in exps):
            known = sorted({p.name for item in root.items if isinstance(item, S.Experiment)
                            for p in self._flatten(item, [item.name]) if isinstance(p, S.Profile)})
            self.out.error("unknown-profile", root.span, name=self.profile,
                           help=dg.did_you_mean(self.profile, known)
                           or (f"profiles here: {', '.join(known)}" if known
                               else "this file declares no profile"))
        return ir.Program(experiments=exps, files=tuple(self.loaded.modules))

    def profile_names(self) -> list[str]:
        """The profiles the root file's experiments declare (their own or inherited)."""
        root = self.loaded.modules[self.loaded.root]
        names: list[str] = []
        for item in root.items:
            if isinstance(item, S.Experiment):
                for s in self._quiet_flatten(item):
                    if isinstance(s, S.Profile) and s.name not in names:
                        names.append(s.name)
        return names

    def _flatten(self, exp: S.Experiment, seen: list[str]) -> list[S.Stmt]:
        """The statements of ``exp`` with those of the experiments it extends first."""
        if exp.extends is None:
            return list(exp.body)
        if exp.extends in seen or exp.extends == exp.name:
            self.out.error("extends-cycle", exp.extends_span, name=seen[0],
                           cycle=" -> ".join([*seen, exp.extends]))
            return list(exp.body)
        base = self.experiments.get(exp.extends)
        if base is None:
            self.out.error("unknown-name", exp.extends_span, kind="experiment", name=exp.extends,
                           help=dg.did_you_mean(exp.extends, self.experiments))
            return list(exp.body)
        return [*self._flatten(base[0], [*seen, exp.extends]), *exp.body]

    # ------------------------------------------------------------ experiments
    def experiment(self, exp: S.Experiment, file: str) -> ir.Experiment:  # noqa: C901
        scope = Scope(self, file)
        stmts = self._flatten(exp, [exp.name])
        own = _ids(exp.body)
        origin_of: Callable[[S.Stmt], ir.Origin] = lambda s: (  # noqa: E731
            ir.Origin(how="set", detail=f"at {s.span}") if id(s) in own
            else ir.Origin(how="extends", detail=f"{exp.extends} at {s.span}"))

        profile_stmts: list[tuple[S.Stmt, S.Profile]] = []
        profiles = [s for s in stmts if isinstance(s, S.Profile)]
        chosen = [p for p in profiles if p.name == self.profile]
        for p in chosen:
            profile_stmts.extend((s, p) for s in p.body)

        # Variables first: sweep axes and search parameters are visible everywhere.
        for s in stmts:
            if isinstance(s, S.Block) and (s.kind, s.variant) in _SWEEP_BLOCKS:
                for b in s.body:
                    for name in _bound_names(b):
                        path = _field_path(name)
                        if path is None:
                            scope.vars.add(name)
                        elif not isinstance(b, S.Assign):
                            scope.swept[path.split(".")[-1]] = path

        # Declarations and lets, in order; a later one with the same name overrides (extends).
        decls: dict[str, ir.Declaration] = {}
        decl_src: dict[str, S.Stmt] = {}
        for s in stmts:
            # `circuit = eap_ig(...)` also names the circuit, so metrics can refer to it.
            if isinstance(s, S.Assign) and s.target == ("circuit",) and "circuit" not in (
                    scope.decls):
                scope.decls["circuit"] = ("circuit", s.value, S.Decl(
                    kind="circuit", name="circuit", value=s.value, span=s.span,
                    kind_span=s.target_span, name_span=s.target_span))
                decl_src["circuit"] = s
        for s in stmts:
            if isinstance(s, S.Let):
                scope.lets[s.name] = self.value(s.value, T.ANY, scope, f'let "{s.name}"')
            elif isinstance(s, S.Decl):
                if s.name in decl_src and id(decl_src[s.name]) in own and id(s) in own:
                    self.out.error("duplicate-name", s.name_span, name=s.name,
                                   help=f"the first definition is at {decl_src[s.name].span}")
                    continue
                decl_src[s.name] = s
                scope.decls[s.name] = (s.kind, s.value, s)
        for s, _ in profile_stmts:  # profile overrides of declarations: `base = gpt2(...)`
            if isinstance(s, S.Assign) and len(s.target) == 1 and s.target[0] in scope.decls:
                kind, _, d = scope.decls[s.target[0]]
                scope.decls[s.target[0]] = (kind, s.value, d)
                decl_src[s.target[0]] = s
        for name, (kind, value, d) in scope.decls.items():
            if kind not in schema.DECL_KINDS:
                self.out.error("unknown-name", d.kind_span, kind="declaration kind", name=kind,
                               help=dg.did_you_mean(kind, schema.DECL_KINDS)
                               or f"declarations are: {', '.join(schema.DECL_KINDS)}")
                continue
            src = decl_src[name]
            lowered = self.value(value, T.Kind(kind), scope, f"{kind} {name}")
            origin = (ir.Origin(how="profile", detail=f"{self.profile} at {src.span}")
                      if isinstance(src, S.Assign) else origin_of(src))
            decls[name] = ir.Declaration(kind=kind, name=name, value=lowered, origin=origin,
                                         span=d.span)
            if kind == "model" and scope.model is None:
                scope.model = self.model_comp(lowered, scope)

        fields: dict[str, ir.Field] = {}
        checks: list[ir.CheckResult] = []
        checkpoints: list[ir.Checkpoints] = []
        sweep: ir.Sweep | None = None
        search: ir.Search | None = None
        inherited_block = False

        def set_field(path: str, stmt: S.Assign, origin: ir.Origin, params: tuple[C.Param, ...],
                      block: str) -> None:
            name = path.split(".")[-1]
            spec = schema.field(params, name)
            if spec is None:
                known = [p.name for p in params]
                self.out.error("unknown-field", stmt.target_span, name=name, block=block,
                               help=dg.did_you_mean(name, known)
                               or f"fields of {block}: {', '.join(known)}")
                return
            prev = fields.get(path)
            if prev is not None and prev.origin.how == origin.how == "set":
                self.out.error("duplicate-name", stmt.target_span, name=path,
                               help=f"it is first set {prev.origin.detail}")
                return
            value = self.value(stmt.value, spec.type, scope, f'"{path}"', spec)
            fields[path] = ir.Field(path=path, value=value, origin=origin, span=stmt.span)

        for s in stmts:
            origin = origin_of(s)
            match s:
                case S.Assign():
                    path = ".".join(s.target)
                    if len(s.target) == 2 and s.target[0] == "train":
                        set_field(path, s, origin, schema.TRAIN, "train")
                    elif len(s.target) == 1:
                        set_field(path, s, origin, schema.EXPERIMENT, f"experiment {exp.name}")
                    else:
                        self.out.error("unknown-field", s.target_span, name=path,
                                       block=f"experiment {exp.name}")
                case S.Block(kind="train", variant=None):
                    for b in s.body:
                        if isinstance(b, S.Assign) and len(b.target) == 1:
                            set_field(f"train.{b.target[0]}", b, origin_of(b), schema.TRAIN,
                                      "train")
                        else:
                            self.out.error("invalid-value", b.span,
                                           message="a train block holds only `name = value`")
                case S.Block() if (s.kind, s.variant) in _SWEEP_BLOCKS:
                    if (sweep is not None or search is not None) and (
                            inherited_block and id(s) in own):
                        sweep = search = None  # a child's sweep or search replaces its parent's
                    if sweep is not None or search is not None:
                        self.out.error("sweep-conflict", s.head_span,
                                       message="an experiment has at most one sweep or search",
                                       help="merge the axes into one block (a child experiment's "
                                            "own block replaces its parent's)")
                        continue
                    inherited_block = id(s) not in own
                    if s.kind == "sweep":
                        sweep = self.sweep(s, scope)
                    else:
                        search = self.search(s, scope)
                case S.Block():
                    blocks = ["train", "sweep grid", "sweep cbs", "search optuna"]
                    head = s.kind + (f" {s.variant}" if s.variant else "")
                    self.out.error("unknown-block", s.head_span, name=head,
                                   help=dg.did_you_mean(head, blocks)
                                   or f"blocks are: {', '.join(blocks)}")
                case S.Check():
                    value = self.value(s.expr, T.BOOL, scope, "check")
                    passed = value.value if isinstance(value, ir.Const) else None
                    checks.append(ir.CheckResult(expr=value, text=expr_text(s.expr),
                                                 passed=bool(passed) if passed is not None
                                                 else None, span=s.span))
                    if passed is False:
                        self.out.error("check-failed", s.span,
                                       detail=self._explain_check(s.expr, scope),
                                       help="change the values or the check")
                case S.Checkpoints():
                    checkpoints.append(self.checkpoints(s, scope))
                case S.Measure() | S.Axis() | S.Dist() | S.Zip():
                    self.out.error("invalid-value", s.span,
                                   message="this statement belongs inside a sweep, search or "
                                   "checkpoints block")
                case S.Import() | S.Experiment():
                    self.out.error("invalid-value", s.span,
                                   message="imports and experiments belong at the top level")
                case S.Let() | S.Decl() | S.Profile():
                    pass

        for s, prof in profile_stmts:
            origin = ir.Origin(how="profile", detail=f"{prof.name} at {s.span}")
            if isinstance(s, S.Assign):
                if len(s.target) == 1 and s.target[0] in scope.decls:
                    continue
                path = ".".join(s.target)
                if s.target[0] == "train" and len(s.target) == 2:
                    set_field(path, s, origin, schema.TRAIN, "train")
                elif len(s.target) == 1:
                    set_field(path, s, origin, schema.EXPERIMENT, f"experiment {exp.name}")
                elif s.target[0] in ("sweep", "search") and len(s.target) == 2:
                    sweep, search = self._override_setting(s, sweep, search, scope, prof)
                else:
                    self.out.error("unknown-field", s.target_span, name=path,
                                   block=f"profile {prof.name}")
            else:
                self.out.error("invalid-value", s.span,
                               message="a profile holds only `path = value` overrides",
                               help="for example: profile smoke { train.steps = 20 }")

        self._import_globals(decls, fields, sweep, search, file)
        self._fill_experiment_defaults(exp, fields, decls, scope,
                                       {a.path for a in sweep.axes} if sweep else set())
        self._check_budget(exp, fields)
        self._bind_searched(fields, sweep, search)
        self._check_unused_variables(list(decls.values()), list(fields.values()), sweep,
                                     search, checks, checkpoints)
        return ir.Experiment(
            name=exp.name, file=file, decls=tuple(decls.values()),
            fields=tuple(sorted(fields.values(), key=lambda f: f.path)), checks=checks,
            checkpoints=checkpoints, sweep=sweep, search=search,
            profile=self.profile if chosen else None, extends=exp.extends,
            params=P.model_params(scope.model) if scope.model is not None else None,
            shape=scope.model,
            span=exp.span)

    def _import_globals(self, decls: dict[str, ir.Declaration], fields: dict[str, ir.Field],
                        sweep: ir.Sweep | None, search: ir.Search | None, file: str) -> None:
        """Copy the top-level declarations an experiment refers to into it, so that its IR
        (and every run's configuration) is self-contained."""
        values: list[ir.Value] = [d.value for d in decls.values()]
        values += [f.value for f in fields.values()]
        for block in (sweep, search):
            if block is not None:
                values += [f.value for f in (*block.derived, *block.settings)]
        # Swept declarations too (`model in [small, big]`): a run's configuration holds the
        # definition of the model it trains, so changing `small` changes its runs' hashes.
        if sweep is not None:
            values += [v for a in sweep.axes if not isinstance(a.values, ir.ConstRange)
                       for v in a.values]
        if search is not None:
            values += [p.dist for p in search.params]
        pending = [v for root in values for v in _walk(root) if isinstance(v, ir.Ref)]
        while pending:
            ref = pending.pop()
            if ref.name in decls or ref.name not in self.global_decls or ref.kind == "experiment":
                continue
            d, where = self.global_decls[ref.name]
            value = self._quiet(lambda d=d, where=where: self.expr(d.value, T.Kind(d.kind),
                                                                   Scope(self, where)))
            decls[ref.name] = ir.Declaration(kind=d.kind, name=ref.name, value=value,
                                             origin=ir.Origin(how="import",
                                                              detail=f"{d.span}"), span=d.span)
            pending += [v for v in _walk(value) if isinstance(v, ir.Ref)]

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

    def _fill_experiment_defaults(self, exp: S.Experiment, fields: dict[str, ir.Field],
                                  decls: dict[str, ir.Declaration], scope: Scope,
                                  swept: set[str]) -> None:
        for kind in ("model", "data"):
            if kind in fields:
                continue
            if kind in swept:  # `model in [small, big]`: each run's own
                fields[kind] = ir.Field(path=kind, value=ir.Var(name=kind, span=exp.name_span),
                                        origin=ir.Origin(how="swept", detail=f"{kind} in [...]"),
                                        span=exp.name_span)
                continue
            mine = [d for d in decls.values() if d.kind == kind and d.origin.how != "import"]
            if len(mine) == 1:
                fields[kind] = ir.Field(path=kind, value=ir.Ref(kind=kind, name=mine[0].name),
                                        origin=ir.Origin(how="default",
                                                         detail=f"the only {kind} declared"),
                                        span=mine[0].span)
            elif len(mine) > 1:
                self.out.error("missing-field", exp.name_span,
                               message=f"experiment {exp.name} declares several {kind}s; say "
                               f"which one it trains", help=f"add `{kind} = <name>`")
            elif kind == "model":
                self.out.error("missing-field", exp.name_span,
                               message=f"experiment {exp.name} has no model",
                               help="declare one: model base = gpt2(vocab = bytes)")
        for params, prefix in ((schema.EXPERIMENT, ""), (schema.TRAIN, "train.")):
            for p in params:
                path = prefix + p.name
                if path in fields or p.default == C.REQUIRED:
                    continue
                value = self.value(_default_expr(p.default), p.type, scope, path, p,
                                   span=exp.name_span)
                fields[path] = ir.Field(path=path, value=value, span=exp.name_span,
                                        origin=ir.Origin(how="default", detail=p.default))

    def _check_budget(self, exp: S.Experiment, fields: dict[str, ir.Field]) -> None:
        given = [k for k in ("train.steps", "train.epochs", "train.tokens")
                 if not _is_none(fields.get(k))]
        if len(given) > 1:
            last = fields[given[-1]]
            self.out.error("conflicting-fields", last.span,
                           message=f"give one training budget, not {' and '.join(given)}",
                           help="keep steps, epochs or tokens")

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
        # A variable switched off by its `when` would leave what uses it unbound in those runs.
        conditions = {id(w) for w in (
            [a.when for a in sweep.axes] if sweep is not None else []) + (
            [p.when for p in search.params] if search is not None else []) if w is not None}
        conditional = {a.path: a.span for a in (sweep.axes if sweep is not None else ())
                       if a.when is not None and _field_path(a.path) is None}
        conditional |= {p.name: p.span for p in (search.params if search is not None else ())
                        if p.when is not None and _field_path(p.name) is None}
        for v in values:
            if id(v) in conditions:
                continue
            for x in _walk(v):
                if isinstance(x, ir.Comp):
                    for arg in x.args:
                        if isinstance(arg.value, ir.Var | ir.Searched) and \
                                arg.value.name in conditional:
                            name = arg.value.name
                            self.out.error(
                                "sweep-conflict", conditional.pop(name),
                                message=f'"{name}" has a `when`, so some runs have no value '
                                        f"for it, but {x.name}({arg.name} = {name}) needs one",
                                help=f"sweep the argument itself: `train.<field>.{arg.name} "
                                     f"in [...] when ...` keeps its default where the "
                                     "condition is false")
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

    # ------------------------------------------------------------ sweeps and searches
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

    # ------------------------------------------------------------ values
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
            if spec.hi is not None and x > spec.hi:
                bad = f"at most {_num(spec.hi)}"
            if bad is not None:
                bounds = []
                if spec.lo is not None:
                    bounds.append(f"{'above' if spec.lo_open else 'at least'} {_num(spec.lo)}")
                if spec.hi is not None:
                    bounds.append(f"at most {_num(spec.hi)}")
                self.out.error("out-of-range", item.span, what=what,
                               bound=" and ".join(bounds), got=_num(x), help=spec.doc or None)

    def expr(self, e: S.Expr, t: T.Type, scope: Scope) -> ir.Value:  # noqa: C901
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
                self.out.error("number-too-large", e.span, what="the result",
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
        import attrs

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
        comp = C.lookup(name)
        if comp is not None and comp.kind != "function":
            return self.call(S.Call(func=S.Name(id=name, span=sp), args=(), span=sp), t, scope,
                             bare=True)
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
            comp = C.lookup(target.name)
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
        if not isinstance(e.func, S.Name):
            self.out.error("type-mismatch", e.func.span, what="a call", expected="a component "
                           "name", got=_describe_expr(e.func))
            return ir.Const(value=None, span=e.span)
        name = e.func.id
        comp = C.lookup(name)
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
                           name=name, help=dg.did_you_mean(name, _catalogue_names(t)
                                                           or C.BY_NAME))
            return _poison(e.span)
        args = self.arguments(comp, e, scope, bare)
        if comp.kind == "function":
            return self.function(comp, args, e, scope)
        value = ir.Comp(name=name, kind=comp.kind, args=args, span=e.span)
        if name in tasks.CORRUPTIONS:
            self._check_task(value)
        return value

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

    # ------------------------------------------------------------ compile-time functions
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


# ---------------------------------------------------------------- helpers


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


def _enum_words(t: T.Type) -> set[str]:
    match t:
        case T.Enum(values=v):
            return set(v)
        case T.Optional_(inner=i) | T.ListOf(item=i):
            return _enum_words(i)
        case T.Union_(options=opts):
            return set().union(*(_enum_words(o) for o in opts))
    return set()


def _catalogue_names(t: T.Type) -> list[str]:
    kinds = T.kinds_in(t)
    return [c.name for c in C.CATALOGUE if c.kind in kinds]


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


def _mismatch(v: ir.Value, t: T.Type) -> str | None:  # noqa: C901
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
    import attrs

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
