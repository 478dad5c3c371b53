"""Lower the AST to the IR: resolve names, type-check against the catalogue, fill defaults.

Example:
    ``policy = lora(rank = 8)`` becomes ``Field("policy", Comp("lora", "policy", [rank=8,
    alpha=none, dropout=0.0, targets=all_linear, ...]))`` with every default marked as such.
"""

from __future__ import annotations

from collections.abc import Iterable

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import schema
from specc.catalogue import types as T
from specc.compiler import ir
from specc.compiler import params as P
from specc.compiler.load_modules import Loaded
from specc.compiler.lower_exprs import ExprLowering
from specc.compiler.lower_sweeps import SweepLowering
from specc.compiler.values import (
    _SWEEP_BLOCKS,
    Scope,
    _bound_names,
    _default_expr,
    _field_path,
    _ids,
    _is_none,
    _item_name,
    _walk,
    expr_text,
)
from specc.lang import syntax as S


class Lowerer(ExprLowering, SweepLowering):
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
    def experiment(self, exp: S.Experiment, file: str) -> ir.Experiment:
        """One experiment: its statements (its parents' first), then the chosen profile's
        overrides, then defaults and the checks over the whole (Note [Experiment assembly])."""
        return _Assembly(self, exp, file).build()

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


    def _fill_experiment_defaults(self, exp: S.Experiment, fields: dict[str, ir.Field],
                                  decls: dict[str, ir.Declaration], scope: Scope,
                                  swept: set[str]) -> None:
        for kind in ("model", "data", "objective"):
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
            elif kind == "model":  # an objective defaults to the model's (Note [Default objective])
                self.out.error("missing-field", exp.name_span,
                               message=f"experiment {exp.name} has no model",
                               help="declare one: model base = gpt2(vocab = bytes)")
        for params, prefix in ((schema.EXPERIMENT, ""), (schema.TRAIN, "train.")):
            for p in params:
                path = prefix + p.name
                if path in fields or p.default == C.REQUIRED or path == "objective":
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




    # ------------------------------------------------------------ sweeps and searches










    # ------------------------------------------------------------ values













    # ------------------------------------------------------------ compile-time functions








# ---------------------------------------------------------------- helpers


# Note [Experiment assembly]: an experiment is lowered in passes over its statements (its
# parents' first, `extends`): sweep variables (visible everywhere), declarations and lets,
# fields and blocks, then the chosen profile's overrides; then the top-level declarations it
# uses are copied in, defaults filled, and the checks that need the whole experiment run.
class _Assembly:
    def __init__(self, lowerer: Lowerer, exp: S.Experiment, file: str) -> None:
        self.lw, self.exp, self.file = lowerer, exp, file
        self.out = lowerer.out
        self.scope = Scope(lowerer, file)
        self.stmts = lowerer._flatten(exp, [exp.name])
        self.own = _ids(exp.body)
        chosen = [p for p in self.stmts if isinstance(p, S.Profile)
                  and p.name == lowerer.profile]
        self.profiled = bool(chosen)
        self.profile_stmts = [(s, p) for p in chosen for s in p.body]
        self.decls: dict[str, ir.Declaration] = {}
        self.fields: dict[str, ir.Field] = {}
        self.checks: list[ir.CheckResult] = []
        self.checkpoints: list[ir.Checkpoints] = []
        self.sweep: ir.Sweep | None = None
        self.search: ir.Search | None = None
        self.analysis_stmts: list[S.Stmt] = []
        self.analysis_inherited = False
        self.inherited_block = False

    def origin_of(self, s: S.Stmt) -> ir.Origin:
        if id(s) in self.own:
            return ir.Origin(how="set", detail=f"at {s.span}")
        return ir.Origin(how="extends", detail=f"{self.exp.extends} at {s.span}")

    def build(self) -> ir.Experiment:
        self.variables()
        self.declarations()
        for s in self.stmts:
            self.statement(s)
        self.profile_overrides()
        lw, exp, scope = self.lw, self.exp, self.scope
        sweep, search = self.sweep, self.search
        lw._import_globals(self.decls, self.fields, sweep, search, self.file)
        lw._fill_experiment_defaults(exp, self.fields, self.decls, scope,
                                     {a.path for a in sweep.axes} if sweep else set())
        lw._check_budget(exp, self.fields)
        lw._bind_searched(self.fields, sweep, search)
        lw._check_unused_variables(list(self.decls.values()), list(self.fields.values()), sweep,
                                   search, self.checks, self.checkpoints)
        analysis = self.lower_analysis() if self.analysis_stmts else None
        return ir.Experiment(
            name=exp.name, file=self.file, decls=tuple(self.decls.values()),
            fields=tuple(sorted(self.fields.values(), key=lambda f: f.path)), checks=self.checks,
            checkpoints=self.checkpoints, sweep=sweep, search=search, analysis=analysis,
            profile=lw.profile if self.profiled else None, extends=exp.extends,
            params=P.model_params(scope.model) if scope.model is not None else None,
            shape=scope.model, span=exp.span)

    def lower_analysis(self) -> ir.Analysis:
        """The analysis block against this experiment's metrics and sweep variables."""
        from specc.compiler.lower_analysis import AnalysisLowering, metric_names

        metrics = self.fields.get("metrics")
        decls = {n: d.value for n, d in self.decls.items()}
        names = metric_names(metrics.value if metrics is not None else None, decls)
        axes = {**{v: v for v in self.scope.vars}, **self.scope.swept}  # name -> binding key
        return AnalysisLowering(self.out, names, axes).block(self.analysis_stmts)

    def variables(self) -> None:
        """Sweep axes and search parameters first: they are visible everywhere."""
        for s in self.stmts:
            if isinstance(s, S.Block) and (s.kind, s.variant) in _SWEEP_BLOCKS:
                for b in s.body:
                    for name in _bound_names(b):
                        path = _field_path(name)
                        if path is None:
                            self.scope.vars.add(name)
                        elif not isinstance(b, S.Assign):
                            self.scope.swept[path.split(".")[-1]] = path

    def declarations(self) -> None:
        """Declarations and lets, in order; a later one with the same name overrides it
        (extends), and so does a profile's `base = ...`."""
        scope, own = self.scope, self.own
        decl_src: dict[str, S.Stmt] = {}
        for s in self.stmts:
            # `circuit = eap_ig(...)` also names the circuit, so metrics can refer to it.
            if isinstance(s, S.Assign) and s.target == ("circuit",) and "circuit" not in (
                    scope.decls):
                scope.decls["circuit"] = ("circuit", s.value, S.Decl(
                    kind="circuit", name="circuit", value=s.value, span=s.span,
                    kind_span=s.target_span, name_span=s.target_span))
                decl_src["circuit"] = s
        for s in self.stmts:
            if isinstance(s, S.Let):
                scope.lets[s.name] = self.lw.value(s.value, T.ANY, scope, f'let "{s.name}"')
            elif isinstance(s, S.Decl):
                if s.name in decl_src and id(decl_src[s.name]) in own and id(s) in own:
                    self.out.error("duplicate-name", s.name_span, name=s.name,
                                   help=f"the first definition is at {decl_src[s.name].span}")
                    continue
                decl_src[s.name] = s
                scope.decls[s.name] = (s.kind, s.value, s)
        for s, _ in self.profile_stmts:
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
            lowered = self.lw.value(value, T.Kind(kind), scope, f"{kind} {name}")
            origin = (ir.Origin(how="profile", detail=f"{self.lw.profile} at {src.span}")
                      if isinstance(src, S.Assign) else self.origin_of(src))
            self.decls[name] = ir.Declaration(kind=kind, name=name, value=lowered,
                                              origin=origin, span=d.span)
            if kind == "model" and scope.model is None:
                scope.model = self.lw.model_comp(lowered, scope)

    def set_field(self, path: str, stmt: S.Assign, origin: ir.Origin,
                  params: tuple[C.Param, ...], block: str) -> None:
        name = path.split(".")[-1]
        spec = schema.field(params, name)
        if spec is None:
            known = [p.name for p in params]
            self.out.error("unknown-field", stmt.target_span, name=name, block=block,
                           help=dg.did_you_mean(name, known)
                           or f"fields of {block}: {', '.join(known)}")
            return
        prev = self.fields.get(path)
        if prev is not None and prev.origin.how == origin.how == "set":
            self.out.error("duplicate-name", stmt.target_span, name=path,
                           help=f"it is first set {prev.origin.detail}")
            return
        value = self.lw.value(stmt.value, spec.type, self.scope, f'"{path}"', spec)
        self.fields[path] = ir.Field(path=path, value=value, origin=origin, span=stmt.span)

    def assign(self, s: S.Assign, origin: ir.Origin, where: str) -> None:
        path = ".".join(s.target)
        if len(s.target) == 2 and s.target[0] == "train":
            self.set_field(path, s, origin, schema.TRAIN, "train")
        elif len(s.target) == 1:
            self.set_field(path, s, origin, schema.EXPERIMENT, f"experiment {self.exp.name}")
        else:
            self.out.error("unknown-field", s.target_span, name=path, block=where)

    def statement(self, s: S.Stmt) -> None:
        match s:
            case S.Assign():
                self.assign(s, self.origin_of(s), f"experiment {self.exp.name}")
            case S.Block(kind="train", variant=None):
                for b in s.body:
                    if isinstance(b, S.Assign) and len(b.target) == 1:
                        self.set_field(f"train.{b.target[0]}", b, self.origin_of(b),
                                       schema.TRAIN, "train")
                    else:
                        self.out.error("invalid-value", b.span,
                                       message="a train block holds only `name = value`")
            case S.Block() if (s.kind, s.variant) in _SWEEP_BLOCKS:
                self.sweep_block(s)
            case S.Block(kind="analysis", variant=None):
                # like a sweep: a child's own analysis replaces its parent's (several blocks of
                # one experiment add up)
                own = id(s) in self.own
                if own and self.analysis_inherited:
                    self.analysis_stmts = []
                self.analysis_inherited = not own
                self.analysis_stmts.extend(s.body)
            case S.Block():
                blocks = ["train", "sweep grid", "sweep cbs", "search optuna", "analysis"]
                head = s.kind + (f" {s.variant}" if s.variant else "")
                self.out.error("unknown-block", s.head_span, name=head,
                               help=dg.did_you_mean(head, blocks)
                               or f"blocks are: {', '.join(blocks)}")
            case S.Check():
                self.check(s)
            case S.Checkpoints():
                self.checkpoints.append(self.lw.checkpoints(s, self.scope))
            case S.Measure() | S.Axis() | S.Dist() | S.Zip():
                self.out.error("invalid-value", s.span,
                               message="this statement belongs inside a sweep, search or "
                               "checkpoints block")
            case S.Import() | S.Experiment():
                self.out.error("invalid-value", s.span,
                               message="imports and experiments belong at the top level")
            case S.Let() | S.Decl() | S.Profile():
                pass

    def sweep_block(self, s: S.Block) -> None:
        """At most one sweep or search; a child's own block replaces its parent's."""
        if (self.sweep is not None or self.search is not None) and (
                self.inherited_block and id(s) in self.own):
            self.sweep = self.search = None
        if self.sweep is not None or self.search is not None:
            self.out.error("sweep-conflict", s.head_span,
                           message="an experiment has at most one sweep or search",
                           help="merge the axes into one block (a child experiment's "
                                "own block replaces its parent's)")
            return
        self.inherited_block = id(s) not in self.own
        if s.kind == "sweep":
            self.sweep = self.lw.sweep(s, self.scope)
        else:
            self.search = self.lw.search(s, self.scope)

    def check(self, s: S.Check) -> None:
        value = self.lw.value(s.expr, T.BOOL, self.scope, "check")
        passed = value.value if isinstance(value, ir.Const) else None
        self.checks.append(ir.CheckResult(expr=value, text=expr_text(s.expr),
                                          passed=bool(passed) if passed is not None else None,
                                          span=s.span))
        if passed is False:
            self.out.error("check-failed", s.span,
                           detail=self.lw._explain_check(s.expr, self.scope),
                           help="change the values or the check")

    def profile_overrides(self) -> None:
        for s, prof in self.profile_stmts:
            origin = ir.Origin(how="profile", detail=f"{prof.name} at {s.span}")
            if not isinstance(s, S.Assign):
                self.out.error("invalid-value", s.span,
                               message="a profile holds only `path = value` overrides",
                               help="for example: profile smoke { train.steps = 20 }")
            elif len(s.target) == 1 and s.target[0] in self.scope.decls:
                continue  # a declaration: overridden in declarations()
            elif s.target[0] in ("sweep", "search") and len(s.target) == 2:
                self.sweep, self.search = self.lw._override_setting(
                    s, self.sweep, self.search, self.scope, prof)
            else:
                self.assign(s, origin, f"profile {prof.name}")
