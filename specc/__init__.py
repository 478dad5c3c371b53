"""specc: a declarative, spec-driven experiment compiler for ML research.

The embedding API returns structured diagnostics instead of raising for a user's mistakes.
"""

from __future__ import annotations

from pathlib import Path

from specc.compiler import ir
from specc.compiler.pipeline import Result, compile_file, compile_source
from specc.compiler.plan import Plan, Run
from specc.diagnostics import Diagnostic, Span, SpeccError
from specc.lang import syntax
from specc.lang.parser import parse_text
from specc.lang.printer import print_module

__all__ = [
    "Diagnostic",
    "Plan",
    "Result",
    "Run",
    "Span",
    "SpeccError",
    "check",
    "compile",
    "format_source",
    "ir",
    "parse",
    "plan",
    "syntax",
]
__version__ = "0.1.0"
# The distribution name on the package registry (`specc` there is an unrelated project); the
# import package and the command stay `specc`.
DISTRIBUTION = "specc-exp"


def parse(text: str, file: str = "<input>") -> tuple[syntax.Module | None, list[Diagnostic]]:
    """Parse one file's text to its AST; syntax errors come back as diagnostics."""
    return parse_text(text, file)


def _compile(source: str | Path, stop_after: str, **kw: object) -> Result:
    if isinstance(source, Path) or _looks_like_path(source):
        return compile_file(source, stop_after=stop_after, **kw)  # type: ignore[arg-type]
    return compile_source(str(source), stop_after=stop_after, **kw)  # type: ignore[arg-type]


def _looks_like_path(source: str) -> bool:
    """A one-line string naming an .exp file (existing or not: a missing file is reported as
    one, never parsed as spec text) or an existing file."""
    if "\n" in source or "{" in source:
        return False
    return source.strip().endswith(".exp") or Path(source).is_file()


def check(source: str | Path, *, backend: str | None = None,
          profile: str | None = None) -> list[Diagnostic]:
    """Every diagnostic of a spec (text, or a path to a .exp file); empty when it is valid."""
    return list(_compile(source, "check", backend=backend, profile=profile).diagnostics)


def compile(source: str | Path, *, backend: str | None = None,
            profile: str | None = None) -> Result:
    """Compile to the typed IR (``result.program``), with diagnostics."""
    return _compile(source, "check", backend=backend, profile=profile)


def plan(source: str | Path, *, backend: str | None = None, profile: str | None = None) -> Result:
    """Compile and plan (``result.plan``: runs with hashes, search spaces, cost)."""
    return _compile(source, "plan", backend=backend, profile=profile)


def format_source(text: str, file: str = "<input>") -> tuple[str | None, list[Diagnostic]]:
    """Canonical text of a spec, or None and the syntax errors.

    Raises:
        SpeccError: if formatting would change the spec's meaning (an internal bug; nothing
            is written).
    """
    module, diags = parse_text(text, file)
    if module is None:
        return None, diags
    out = print_module(module)
    again, _ = parse_text(out, file)
    if again is None or again != module or len(again.comments) != len(module.comments):
        msg = f"{file}: formatting would change the meaning or lose a comment; nothing written"
        raise SpeccError(msg)
    return out, []
