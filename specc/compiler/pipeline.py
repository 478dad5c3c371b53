"""The ordered stages and passes from text to Plan; each stage stops on errors."""

from __future__ import annotations

import contextvars
import os
from pathlib import Path

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.compiler import ir
from specc.compiler.capabilities import check_capabilities
from specc.compiler.check_backend import check_backend
from specc.compiler.dependencies import check_dependency_cycles
from specc.compiler.load_modules import Loaded, load_modules
from specc.compiler.lower import Lowerer
from specc.compiler.plan import Plan, build_plan
from specc.lang import syntax as S
from specc.lang.source import SourceError, read_source


@attrs.frozen(kw_only=True)
class Result:
    """What a compilation gave: the program and plan (None when errors stopped it)."""

    diagnostics: tuple[dg.Diagnostic, ...] = attrs.field(converter=tuple)
    sources: dg.Sources = attrs.field(eq=False, repr=False)
    loaded: Loaded | None = attrs.field(default=None, repr=False)
    program: ir.Program | None = None
    plan: Plan | None = attrs.field(default=None, repr=False)
    registry: C.Registry | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def render(self) -> str:
        return dg.render_all(self.diagnostics, self.sources)


# The passes that run over the IR, in order; each is `(program, out) -> program`.
def _backend_pass(backend: str | None):  # type: ignore[no-untyped-def]
    return lambda program, out: check_backend(program, backend, out)


def compile_source(text: str, file: str = "<input>", *, profile: str | None = None,
                   backend: str | None = None, stop_after: str = "plan") -> Result:
    """Run the stages: load (parse + imports) -> lower (names, types, defaults) -> passes -> plan.

    Example:
        >>> r = compile_source("experiment e { model m = gpt2(vocab = bytes) }")
        >>> r.ok, r.plan.experiments[0].count
        (True, 1)
    """
    sources = dg.Sources()
    out = dg.Collector()
    loaded = load_modules(text, file, sources, out)
    if loaded is None or out.has_errors or stop_after == "parse":
        return Result(diagnostics=out.items, sources=sources, loaded=loaded)
    registry = registry_for(loaded)
    with C.using(registry):
        result = _compile_loaded(loaded, sources, out, profile, backend, stop_after)
    return attrs.evolve(result, registry=registry)


def names_in(path: str) -> tuple[list[str], list[str]]:
    """(experiments, profiles) a spec file declares, for shell completion: parsed and its
    imports loaded, nothing lowered; ([], []) for a file that does not parse."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return [], []
    out = dg.Collector()
    loaded = load_modules(text, path, dg.Sources(), out)
    if loaded is None:
        return [], []
    root = loaded.modules[loaded.root]
    experiments = [i.name for i in root.items if isinstance(i, S.Experiment)]
    return experiments, Lowerer(loaded, out).profile_names()


def registry_for(loaded: Loaded | None) -> C.Registry:
    """What a compilation's names resolve to: the built-ins, installed plug-ins (read from
    their source, never imported) and the spec's `import python` files."""
    from specc.catalogue.pyread import plugin_reads

    mine = loaded.components if loaded is not None else ()
    # A plug-in module that the spec also imports as a file is one provider, not two.
    files = {os.path.realpath(c.origin.path) for c in mine}
    plugins = [c for _, _, read in plugin_reads() if read is not None for c in read.components
               if os.path.realpath(c.origin.path) not in files]
    return C.Registry((*C.builtin_registry().components, *plugins, *mine))


def _compile_loaded(loaded: Loaded, sources: dg.Sources, out: dg.Collector, profile: str | None,
                    backend: str | None, stop_after: str) -> Result:
    lowerer = Lowerer(loaded, out, profile=profile)
    program = lowerer.program()
    if profile is None:
        _check_profiles(loaded, lowerer.profile_names(), out)
    check_dependency_cycles(loaded, out)
    check_capabilities(program, out)
    if out.has_errors:
        return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program)
    for run_pass in (_backend_pass(backend),):
        program = run_pass(program, out)
    if out.has_errors or stop_after == "check":
        return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program)
    token = _DEPENDENCIES.set({}) if _DEPENDENCIES.get() is None else None
    try:
        program = _pin_checkpoints(program, loaded, profile, backend)
    finally:
        if token is not None:
            _DEPENDENCIES.reset(token)
    return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program,
                  plan=build_plan(program))


def _check_profiles(loaded: Loaded, names: list[str], out: dg.Collector) -> None:
    """Every profile is checked, always: a mistake inside `profile smoke { ... }` is reported
    by a plain `check`, not only by `--profile smoke`. Each profile's program is lowered on the
    side; the diagnostics it adds (once each) join the plain program's."""
    known = {(d.code, d.span, d.message) for d in out.items}
    for name in names:
        side = dg.Collector()
        Lowerer(loaded, side, profile=name).program()
        for d in side.items:  # the collector keeps one of each
            if (d.code, d.span, d.message) not in known:
                out.add(attrs.evolve(d, notes=(*d.notes, f"with --profile {name}")))


# Note [Pinned checkpoints]: `checkpoint(pretrain)` names another experiment's result. Before
# planning, the compiler plans that experiment as it is defined now (with the same profile when
# it has one) and pins its run hashes into the checkpoint (`runs = [...]`). So a fine-tune's hash
# changes when its base model's definition does, `specc run` trains the dependency when its
# current run is not finished, and a stale result of an older definition is never used.
# Each dependency is planned once per top-level compilation (a chain of n checkpoints costs n
# compilations, not 2^n); cycles are `checkpoint-cycle` errors before any pinning.
_PINNING: set[tuple[str, str]] = set()  # (file, experiment) being planned: a cycle stays unpinned
_DEPENDENCIES: contextvars.ContextVar[dict[tuple[str, str, str | None, str | None],
                                          list[str] | None] | None] = \
    contextvars.ContextVar("specc_dependencies", default=None)
_MAX_PINNED = 1000


def _pin_checkpoints(program: ir.Program, loaded: Loaded, profile: str | None,
                     backend: str | None) -> ir.Program:
    hashes: dict[str, list[str] | None] = {}

    def runs_of(name: str) -> list[str] | None:
        if name not in hashes:
            hashes[name] = _dependency_runs(loaded, name, profile, backend)
        return hashes[name]

    def pin(v: ir.Value) -> ir.Value:
        match v:
            case ir.Comp(name="checkpoint", args=args):
                exp = next((a.value for a in args if a.name == "experiment"), None)
                found = runs_of(exp.name) if isinstance(exp, ir.Ref) else None
                if found is None:
                    return v
                pinned = ir.ListV(items=tuple(ir.Const(value=h) for h in found))
                rest = tuple(a for a in args if a.name != "runs")
                return attrs.evolve(v, args=(*rest, ir.ArgV(name="runs", value=pinned,
                                                            default=True)))
            case ir.Comp(args=args):  # a checkpoint nested in another component's arguments
                return attrs.evolve(v, args=tuple(attrs.evolve(a, value=pin(a.value))
                                                  for a in args))
            case ir.ListV(items=items) | ir.TupleV(items=items):
                return attrs.evolve(v, items=tuple(pin(i) for i in items))
        return v

    experiments = []
    for exp in program.experiments:
        decls = tuple(attrs.evolve(d, value=pin(d.value)) for d in exp.decls)
        fields = tuple(attrs.evolve(f, value=pin(f.value)) for f in exp.fields)
        sweep = exp.sweep
        if sweep is not None:
            axes = tuple(a if isinstance(a.values, ir.ConstRange)
                         else attrs.evolve(a, values=tuple(pin(x) for x in a.values))
                         for a in sweep.axes)
            sweep = attrs.evolve(sweep, axes=axes)
        experiments.append(attrs.evolve(exp, decls=decls, fields=fields, sweep=sweep))
    return attrs.evolve(program, experiments=tuple(experiments))


def _dependency_runs(loaded: Loaded, name: str, profile: str | None,
                     backend: str | None) -> list[str] | None:
    """The run hashes of experiment ``name`` as currently defined (None: not found, a cycle,
    an error in it, or a search, whose trials are not known before it runs)."""
    from specc.lang import syntax as S

    path = next((p for p, m in loaded.modules.items()
                 if any(isinstance(i, S.Experiment) and i.name == name for i in m.items)), None)
    if path is None or (path, name) in _PINNING:
        return None
    cache = _DEPENDENCIES.get()
    key = (path, name, profile, backend)
    if cache is not None and key in cache:
        return cache[key]
    found = _plan_dependency(path, name, profile, backend)
    if cache is not None:
        cache[key] = found
    return found


def _plan_dependency(path: str, name: str, profile: str | None,
                     backend: str | None) -> list[str] | None:
    _PINNING.add((path, name))
    try:
        dep = compile_file(path, profile=profile, backend=backend)
        if not dep.ok and profile is not None:  # the dependency may not define the profile
            dep = compile_file(path, backend=backend)
    finally:
        _PINNING.discard((path, name))
    if dep.plan is None:
        return None
    for ep in dep.plan.experiments:
        if ep.experiment.name == name and ep.experiment.search is None:
            out = []
            for run in ep.runs():
                out.append(run.hash)
                if len(out) > _MAX_PINNED:
                    return None
            return out
    return None


def compile_file(path: str | Path, **kw: object) -> Result:
    """Compile a file from disk; a missing or unreadable file is a diagnostic."""
    p = Path(path)
    sources = dg.Sources()
    where = dg.Span(file=str(p), line=0, col=0, end_line=0, end_col=0)
    try:
        text = read_source(p)
    except FileNotFoundError as exc:
        d = dg.make("io-error", where, path=str(p), reason=exc.strerror or str(exc))
        return Result(diagnostics=[d], sources=sources)
    except SourceError as exc:
        return Result(diagnostics=[exc.diagnostic(where, sources)], sources=sources)
    return compile_source(text, str(p), **kw)  # type: ignore[arg-type]
