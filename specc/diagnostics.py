"""One Diagnostic type, the codes it carries, and its rendering with a caret and a hint."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from specc import codes

Severity = Literal["error", "warning", "note"]


@attrs.frozen(kw_only=True)
class Span:
    """A region of a source file; lines and columns count from 1, ``end_col`` is exclusive."""

    file: str = "<input>"
    line: int = 1
    col: int = 1
    end_line: int = 1
    end_col: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "end_line": self.end_line,
            "end_col": self.end_col,
        }

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span(file="<builtin>", line=0, col=0, end_line=0, end_col=0)


@attrs.frozen(kw_only=True)
class Diagnostic:
    """One problem found in a spec: where, what, the code, and how to fix it."""

    code: str
    message: str
    span: Span
    severity: Severity = "error"
    help: str | None = None
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
            "end": {"line": self.span.end_line, "col": self.span.end_col},
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "notes": list(self.notes),
        }


def make(code: str, span: Span, *, help: str | None = None, **kwargs: object) -> Diagnostic:
    """Build a diagnostic from the registry in :mod:`specc.codes`."""
    return Diagnostic(
        code=code,
        message=codes.render_message(code, **kwargs),
        span=span,
        help=help if help is not None else codes.HELP.get(code),
    )


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return a ``did you mean`` hint for the closest candidate, if any is close enough."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f'did you mean "{matches[0]}"?' if matches else None


class SpeccError(Exception):
    """A user's mistake: carries the diagnostics that explain it."""

    def __init__(self, diagnostics: Sequence[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [
                Diagnostic(code="error", message=diagnostics, span=NO_SPAN, help=None)
            ]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(d.message for d in self.diagnostics))


class Sources:
    """The text of every file read during a compilation, so diagnostics can quote lines."""

    def __init__(self) -> None:
        self._text: dict[str, list[str]] = {}

    def add(self, file: str, text: str) -> None:
        self._text[file] = text.splitlines()

    def line(self, file: str, line: int) -> str | None:
        lines = self._text.get(file)
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]


_SHOWN = 120  # columns of a source line shown under a diagnostic


def render(diag: Diagnostic, sources: Sources | None = None) -> str:
    """Render one diagnostic as ``path:line:col: error: message [code]`` with caret and help."""
    span = diag.span
    if span.line > 0:
        head = f"{span.file}:{span.line}:{span.col}: {diag.severity}: {diag.message}  [{diag.code}]"
    else:
        head = f"{span.file}: {diag.severity}: {diag.message}  [{diag.code}]"
    out = [head]
    text = sources.line(span.file, span.line) if sources is not None and span.line > 0 else None
    if text is not None:
        gutter = str(span.line)
        pad = " " * len(gutter)
        same_line = span.end_line == span.line
        width = (span.end_col - span.col) if same_line else len(text) - span.col + 1
        width = max(1, width)
        line, col = text.rstrip(), span.col - 1
        if len(line) > _SHOWN:  # a window around the caret, never a whole megabyte
            start = max(0, min(col - 20, len(line) - _SHOWN))
            line = ("..." if start else "") + line[start:start + _SHOWN] + (
                "..." if start + _SHOWN < len(line) else "")
            col = col - start + (3 if start else 0)
            width = max(1, min(width, _SHOWN - (span.col - 1 - start)))
        out.append(f" {gutter} | {line}")
        out.append(f" {pad} | {' ' * col}{'^' * width}")
    out.extend(f"  note: {note}" for note in diag.notes)
    if diag.help:
        out.append(f"  help: {diag.help}")
    return "\n".join(out)


def render_all(diags: Sequence[Diagnostic], sources: Sources | None = None) -> str:
    """Render several diagnostics, then a one-line summary."""
    parts = [render(d, sources) for d in diags]
    errors = sum(d.severity == "error" for d in diags)
    if errors:
        parts.append(f"found {errors} error{'s' if errors != 1 else ''}")
    return "\n".join(parts)


def to_json(diags: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)


class Collector:
    """Collects diagnostics during a stage; passes report through it, never raise."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set[tuple[str, Span, str]] = set()

    def error(self, code: str, span: Span, *, help: str | None = None, **kwargs: object) -> None:
        self.add(make(code, span, help=help, **kwargs))

    def add(self, diag: Diagnostic) -> None:
        """One mistake, one diagnostic: the same code, place and message are reported once
        (a base experiment's error is not repeated for each experiment that extends it)."""
        key = (diag.code, diag.span, diag.message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.items.append(diag)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)
