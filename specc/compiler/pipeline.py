"""The ordered stages and passes from text to Plan; each stage stops on errors."""

from __future__ import annotations

from pathlib import Path

import attrs

from specc import diagnostics as dg
from specc.compiler import ir
from specc.compiler.check_backend import check_backend
from specc.compiler.load_modules import Loaded, load_modules
from specc.compiler.lower import Lowerer
from specc.compiler.plan import Plan, build_plan


@attrs.frozen(kw_only=True)
class Result:
    """What a compilation gave: the program and plan (None when errors stopped it)."""

    diagnostics: tuple[dg.Diagnostic, ...] = attrs.field(converter=tuple)
    sources: dg.Sources = attrs.field(eq=False, repr=False)
    loaded: Loaded | None = attrs.field(default=None, repr=False)
    program: ir.Program | None = None
    plan: Plan | None = attrs.field(default=None, repr=False)

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
    program = Lowerer(loaded, out, profile=profile).program()
    if out.has_errors:
        return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program)
    for run_pass in (_backend_pass(backend),):
        program = run_pass(program, out)
    if out.has_errors or stop_after == "check":
        return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program)
    return Result(diagnostics=out.items, sources=sources, loaded=loaded, program=program,
                  plan=build_plan(program))


def compile_file(path: str | Path, **kw: object) -> Result:
    """Compile a file from disk; a missing or unreadable file is a diagnostic."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        d = dg.make("io-error", dg.Span(file=str(p), line=0, col=0, end_line=0, end_col=0),
                    path=str(p), reason=exc.strerror or str(exc))
        return Result(diagnostics=[d], sources=dg.Sources())
    return compile_source(text, str(p), **kw)  # type: ignore[arg-type]
