"""Reading a spec file: a regular file below a size limit, decoded as UTF-8.

Every place that reads a spec from disk (the CLI, the Python API, ``import``) reads it here, so
none of them can be pointed at a device that never ends, a file of another kind, or bytes
that are not text (docs/security.md).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from specc import diagnostics as dg

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: a spec is a page of text; ten thousand lines is generous
SPEC_SUFFIX = ".exp"
PROJECT_MARKERS = (".git", "pyproject.toml", "specc.toml")


class SourceError(Exception):
    """A spec that cannot be read; ``diagnostic(span)`` reports it at ``span`` (the import
    statement, or the file itself), or at the bad byte for text that is not UTF-8."""

    def __init__(self, code: str, *, text: str | None = None, line: int = 0, col: int = 0,
                 help: str | None = None, **kwargs: object) -> None:
        super().__init__(code)
        self.code, self.kwargs, self.help = code, kwargs, help
        self.text, self.line, self.col = text, line, col

    def diagnostic(self, span: dg.Span, sources: dg.Sources | None = None) -> dg.Diagnostic:
        if self.line and "path" in self.kwargs:
            file = str(self.kwargs["path"])
            if sources is not None and self.text is not None:
                sources.add(file, self.text)
            span = dg.Span(file=file, line=self.line, col=self.col, end_line=self.line,
                           end_col=self.col + 1)
        return dg.make(self.code, span, help=self.help, **self.kwargs)


def read_source(path: str | Path, *, imported: bool = False) -> str:
    """The text of a spec file, or ``SourceError``.

    An imported file must also have the ``.exp`` suffix (its link target too): ``import`` never
    reads a file of another kind. ``FileNotFoundError`` passes through for the caller to word.

    Example:
        >>> read_source("/dev/zero")
        Traceback (most recent call last):
        specc.lang.source.SourceError: not-a-file
    """
    p = Path(path)
    shown = str(path)
    if imported and (p.suffix != SPEC_SUFFIX or Path(os.path.realpath(p)).suffix != SPEC_SUFFIX):
        raise SourceError("import-refused", path=shown,
                          reason=f"only {SPEC_SUFFIX} files can be imported")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SourceError("io-error", path=shown, reason=exc.strerror or str(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise SourceError("not-a-file", path=shown,
                          help="a spec is a regular file; give the path of an .exp file")
    if st.st_size > MAX_SPEC_BYTES:
        raise SourceError("source-too-large", path=shown, size=st.st_size,
                          limit=MAX_SPEC_BYTES)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)  # the file may grow after the stat
    except OSError as exc:
        raise SourceError("io-error", path=shown, reason=exc.strerror or str(exc)) from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SourceError("source-too-large", path=shown, size=len(data), limit=MAX_SPEC_BYTES)
    return decode(data, shown)


def decode(data: bytes, file: str) -> str:
    """UTF-8 text, or ``SourceError`` located at the first byte that does not decode."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        raise SourceError("source-not-utf8", path=file, byte=f"0x{data[exc.start]:02x}",
                          text=data.decode("utf-8", errors="replace"), line=line, col=col,
                          help="save the file as UTF-8") from exc


def project_root(spec: str | Path) -> Path:
    """The folder whose files a spec may import: the nearest one above it holding ``.git``,
    ``pyproject.toml`` or ``specc.toml``; the spec's own folder when none does."""
    start = Path(os.path.realpath(Path(spec).parent if str(spec) else "."))
    for d in (start, *start.parents):
        if any((d / m).exists() for m in PROJECT_MARKERS):
            return d
    return start
