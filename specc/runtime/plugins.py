"""At ``specc run``, and only then: components written with ``specc.api`` are imported, checked
against the signature ``specc check`` read, and called.

Note [Component origin]: a component that is not specc's own carries, in its run configuration,
where it comes from (``python``: the file relative to the root spec's folder and its content
SHA-256, or the module and its distribution's version). So editing the file changes the run
hash, and a run never imports a file whose content differs from the one that was checked.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specc import diagnostics as dg
from specc.api import BuildContext
from specc.components import NOT_ARGS, builtin, call
from specc.runtime.control import StageError

USER_FILES: set[str] = set()  # component files imported in this process



class PythonRefused(StageError):
    """``specc run --no-python`` met a component that needs importing user code."""


def provides(cfg: dict[str, Any], base: Path, allow_python: bool = True) -> tuple[str, ...]:
    """What a specc.api component declares it provides (read from its decorator)."""
    info = getattr(builder(cfg, base, allow_python=allow_python), "__specc__", None)
    return tuple(info.provides) if info is not None else ()


def arguments(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in NOT_ARGS}


def build(cfg: dict[str, Any], ctx: BuildContext, *, allow_python: bool = True,
          span: dg.Span | None = None) -> Any:
    """Call the builder a configuration names with its arguments (and ``ctx`` when it takes
    one); the builder's own exceptions are the caller's stage error."""
    fn = builder(cfg, ctx.base, allow_python=allow_python, span=span)
    return call(fn, cfg, ctx)


def builder(cfg: dict[str, Any], base: Path, *, allow_python: bool = True,
            span: dg.Span | None = None) -> Callable[..., Any]:
    origin = cfg.get("python")
    name = str(cfg.get("component"))
    if origin is None:  # specc's own: the module of its entry (Note [Component origin])
        fn = builtin(name)
        if fn is None:
            raise StageError(f"{name} is not a specc.api component", span)
        return fn
    where = origin.get("path") or origin.get("module")
    if not allow_python:
        raise PythonRefused(f"{name} comes from {where}, and --no-python refuses to import "
                            "user code", span, code="python-refused")
    module, file = _module(origin, base, span)
    function = str(origin.get("function") or name.rsplit(".", 1)[-1])
    fn = getattr(module, function, None)
    if not callable(fn):
        raise StageError(f"{where} defines no function {function} at run time (check read "
                         "one); is it created conditionally?", span)
    if file is not None:
        check_drift(fn, file, function, span)
    return fn


def _module(origin: dict[str, Any], base: Path, span: dg.Span | None) -> tuple[Any, Path | None]:
    if "module" in origin:
        _PLUGIN_TOPS.add(str(origin["module"]).split(".")[0])
        try:
            module = importlib.import_module(str(origin["module"]))
        except Exception as exc:
            raise StageError(f"importing {origin['module']} failed: "
                             f"{type(exc).__name__}: {exc}", span) from exc
        file = getattr(module, "__file__", None)
        return module, Path(file) if file else None
    path = (base / str(origin["path"])).resolve()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StageError(f"cannot read component file {path}: {exc.strerror or exc}",
                         span) from exc
    sha = hashlib.sha256(data).hexdigest()
    if sha != origin.get("sha256"):
        raise StageError(f"{path} changed after the run was planned (its content hash "
                         "differs); run `specc run` again so the run's hash follows the file",
                         span)
    key = f"specc_user.{origin.get('provider', path.stem)}_{sha[:16]}"
    if key in sys.modules:
        return sys.modules[key], path
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise StageError(f"cannot import {path}", span)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    USER_FILES.add(str(path))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[key]
        tb = exc.__traceback__
        line = 0
        while tb is not None:
            if Path(tb.tb_frame.f_code.co_filename).resolve() == path:
                line = tb.tb_lineno
            tb = tb.tb_next
        where = dg.Span(file=str(path), line=line, col=1, end_line=line, end_col=2) \
            if line else span
        raise StageError(f"importing {path.name} failed: {type(exc).__name__}: {exc}",
                         where) from exc
    return module, path


def check_drift(fn: Callable[..., Any], file: Path, function: str,
                span: dg.Span | None) -> None:
    """The imported builder's signature is the one ``check`` read from the file's source: a
    decorator that changes it, or a name rebound after the definition, is a located error
    before step 0."""
    from specc.catalogue.components import Origin
    from specc.catalogue.pyread import read_file

    read = read_file(file, str(file), Origin(file.stem))
    entry = next((c for c in read.components if c.origin.function == function), None)
    if entry is None:
        return
    at = dg.Span(file=str(file), line=entry.origin.line, col=1, end_line=entry.origin.line,
                 end_col=2)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise StageError(f"{function}'s signature cannot be read at run time", at) from None
    actual = {n: p for n, p in sig.parameters.items() if n != "ctx"}
    checked = {p.name: p for p in entry.params}
    problems = []
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in actual.values()):
        problems.append("it takes *args or **kwargs")
    for name in checked.keys() - actual.keys():
        problems.append(f'parameter "{name}" is gone')
    for name in actual.keys() - checked.keys():
        if actual[name].kind not in (actual[name].VAR_POSITIONAL, actual[name].VAR_KEYWORD):
            problems.append(f'parameter "{name}" is new')
    for name in checked.keys() & actual.keys():
        required = actual[name].default is inspect.Parameter.empty
        if required != (checked[name].default == "<required>"):
            problems.append(f'"{name}" is {"required" if required else "optional"} at run time')
    if problems:
        raise StageError(f"{function}'s signature at run time differs from the one specc "
                         f"check read in {file.name}: {'; '.join(sorted(problems))} (a "
                         "decorator that changes the signature, or the name rebound after "
                         "the definition?)", at, code="component-drift")


def user_failure(exc: BaseException) -> tuple[str, dg.Span | None] | None:
    """An exception raised inside a component file's code: its message with the traceback's
    frames in user code, located at the innermost one; None when no user frame is involved
    (then it is specc's own failure)."""
    import traceback

    files = set(USER_FILES)
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and getattr(mod, "__name__", "").split(".")[0] in _PLUGIN_TOPS:
            files.add(str(Path(f).resolve()))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if str(Path(f.filename).resolve()) in files]
    if not frames:
        return None
    last = frames[-1]
    span = dg.Span(file=last.filename, line=last.lineno or 1, col=1,
                   end_line=last.lineno or 1, end_col=2)
    lines = [f"{type(exc).__name__}: {exc}", "  in your component code (most recent call last):"]
    lines += [f"    {Path(f.filename).name}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
              for f in frames]
    return "\n".join(lines), span


_PLUGIN_TOPS: set[str] = set()  # top-level packages of imported plug-in modules
