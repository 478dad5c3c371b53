"""Catalogue entries read from Python source with ``ast``: nothing is imported or executed.

A component file (``import python "x.py"``), an installed plug-in's module (the
``specc.components`` entry point) and specc's own ``specc.components.generic`` are read the same
way: every top-level function decorated with ``@component(...)`` becomes a ``Component`` whose
parameters, types, bounds, defaults and help come from its signature and docstring.
Every form outside the annotation vocabulary is one ``component-signature`` diagnostic located
in the ``.py`` file (docs/components.md).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from specc import diagnostics as dg
from specc.api import KIND_TYPES, KINDS
from specc.catalogue import types as T
from specc.catalogue.components import REQUIRED, Component, Origin, Param

MAX_COMPONENT_BYTES = 1 << 20
GROUP = "specc.components"
VOCABULARY = ("int, float, str, bool, Fraction, IntRange, Literal[...], list[X], tuple[X, Y], "
              "X | None, Union[X, Y], Annotated[X, Range(lo=..., hi=...)] or a kind (" +
              ", ".join(KIND_TYPES) + ")")
_PRIMS = {"int": T.INT, "float": T.FLOAT, "str": T.STR, "bool": T.BOOL,
          "Fraction": T.FRACTION, "IntRange": T.RangeT()}
_RUNTIME_PARAMS = ("ctx",)  # filled by the loop, never by the spec


@attrs.frozen
class Read:
    """What reading one file gave."""

    components: tuple[Component, ...]
    diagnostics: tuple[dg.Diagnostic, ...]
    text: str
    sha256: str


class _Bad(Exception):
    def __init__(self, node: ast.AST, message: str) -> None:
        super().__init__(message)
        self.node, self.message = node, message


_MEMO: dict[tuple[str, str, Origin], Read] = {}  # (shown, sha256, origin) -> Read
_MEMO_SIZE = 64


def read_text(text: str, shown: str, origin: Origin) -> Read:
    """The components a component file's source defines, and its diagnostics (remembered by
    content within a process: a spec's dependencies are compiled again while pinning)."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    key = (shown, sha, origin)
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _read_text(text, shown, origin, sha)
    return _MEMO[key]


def _read_text(text: str, shown: str, origin: Origin, sha: str) -> Read:
    origin = attrs.evolve(origin, path=shown, sha256=origin.sha256 or sha)
    try:
        tree = ast.parse(text, filename=shown)
    except SyntaxError as exc:
        span = dg.Span(file=shown, line=exc.lineno or 1, col=exc.offset or 1,
                       end_line=exc.lineno or 1, end_col=(exc.offset or 1) + 1)
        d = dg.make("component-signature", span, message=f"this file does not parse: {exc.msg}",
                    help="fix the Python syntax error")
        return Read((), (d,), text, sha)
    names = _Names(tree)
    comps: list[Component] = []
    diags: list[dg.Diagnostic] = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        deco = next((d for d in node.decorator_list if names.is_component(d)), None)
        if deco is None:
            continue
        try:
            comps.append(_component(node, deco, names, attrs.evolve(
                origin, line=node.lineno, function=node.name)))
        except _Bad as bad:
            diags.append(_diag(bad, shown))
    return Read(tuple(comps), tuple(diags), text, sha)


def read_file(path: Path, shown: str, origin: Origin) -> Read:
    """Read ``path`` (a regular UTF-8 file of at most 1 MiB) and its components."""
    from specc.lang.source import SourceError, decode

    try:
        st = os.stat(path)
        if not os.path.isfile(path):
            raise SourceError("not-a-file", path=shown,
                              help="a component file is a regular .py file")
        if st.st_size > MAX_COMPONENT_BYTES:
            raise SourceError("source-too-large", path=shown, size=st.st_size,
                              limit=MAX_COMPONENT_BYTES)
        with open(path, "rb") as f:
            data = f.read(MAX_COMPONENT_BYTES + 1)
    except OSError as exc:
        raise SourceError("io-error", path=shown, reason=exc.strerror or str(exc)) from exc
    return read_text(decode(data, shown), shown, origin)


def _diag(bad: _Bad, shown: str) -> dg.Diagnostic:
    n = bad.node
    line = getattr(n, "lineno", 1) or 1
    col = (getattr(n, "col_offset", 0) or 0) + 1
    end_line = getattr(n, "end_lineno", line) or line
    end_col = (getattr(n, "end_col_offset", col) or col) + 1
    if end_line != line:
        end_line, end_col = line, col + 1
    return dg.make("component-signature", dg.Span(file=shown, line=line, col=col,
                                                  end_line=end_line, end_col=end_col),
                   message=bad.message.split("\n")[0],
                   help=bad.message.split("\n")[1] if "\n" in bad.message else None)


class _Names:
    """How the file spells ``component``, ``Range``, the kind types and typing's forms."""

    def __init__(self, tree: ast.Module) -> None:
        self.local: dict[str, str] = {}  # local name -> "specc.api.component", "typing.Literal"
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    self.local[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    self.local[a.asname or a.name.split(".")[0]] = \
                        a.name if a.asname else a.name.split(".")[0]

    def qualified(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.local.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def is_component(self, deco: ast.AST) -> bool:
        return isinstance(deco, ast.Call) and self.qualified(deco.func) in (
            "specc.api.component", "specc.component")

    def typing(self, node: ast.AST) -> str | None:
        """``Literal``, ``Annotated``... whatever module they come from (typing or
        typing_extensions), or a bare builtin name."""
        q = self.qualified(node)
        if q is None:
            return None
        return q.rsplit(".", 1)[-1] if q.startswith(("typing.", "typing_extensions.",
                                                     "specc.api.", "specc.")) else q


def _strings(node: ast.AST, what: str) -> tuple[str, ...]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, (ast.Tuple, ast.List)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return tuple(e.value for e in node.elts)  # type: ignore[attr-defined]
    raise _Bad(node, f"{what} must be a tuple of strings written out in the call\n"
                     f'write {what}=("a", "b")')


def _component(fn: ast.FunctionDef | ast.AsyncFunctionDef, deco: ast.Call, names: _Names,
               origin: Origin) -> Component:
    kind_node = deco.args[0] if deco.args else next(
        (k.value for k in deco.keywords if k.arg == "kind"), None)
    if not (isinstance(kind_node, ast.Constant) and isinstance(kind_node.value, str)):
        raise _Bad(deco, "@component needs its kind as a string first\n"
                         f"kinds: {', '.join(KINDS)}")
    kind = kind_node.value
    if kind not in KINDS:
        raise _Bad(kind_node, f'unknown component kind "{kind}"\n'
                              f"kinds: {', '.join(KINDS)}")
    opts: dict[str, Any] = {}
    for k in deco.keywords:
        if k.arg in ("provides", "requires", "members"):
            opts[k.arg] = _strings(k.value, k.arg)
        elif k.arg == "name":
            opts["name"] = _strings(k.value, "name")[0]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", opts["name"]):
                raise _Bad(k.value, f'"{opts["name"]}" is not a name a spec can write')
        elif k.arg != "kind":
            raise _Bad(k, f'@component has no option "{k.arg}"\n'
                          "options: provides, requires, members, name")
    if isinstance(fn, ast.AsyncFunctionDef):
        raise _Bad(fn, f"{fn.name} is async; a builder is a plain function")
    summary, arg_docs = _docstring(ast.get_docstring(fn) or "")
    params = _params(fn, names, arg_docs)
    members = opts.get("members")
    if members is None:
        members = ("train", "test") if kind == "data" else ()
    return Component(opts.get("name", fn.name), kind, summary or fn.name, params,
                     members=tuple(_member(m, deco) for m in members),
                     provides=opts.get("provides", ()), requires=opts.get("requires", ()),
                     origin=origin)


_MEMBER_KINDS = ("split", "pairs")


def _member(text: str, deco: ast.Call) -> tuple[str, str]:
    """``"train"`` is a split; ``"circuit:pairs"`` a member of another kind."""
    name, _, kind = text.partition(":")
    kind = kind or "split"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or kind not in _MEMBER_KINDS:
        raise _Bad(deco, f'member "{text}" is not a name, or a name:kind with kind one of '
                         f"{', '.join(_MEMBER_KINDS)}")
    return name, kind


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: _Names,
            docs: dict[str, str]) -> tuple[Param, ...]:
    a = fn.args
    if a.posonlyargs:
        raise _Bad(a.posonlyargs[0], f"{fn.name}: positional-only parameters are not "
                                     "supported\nremove the `/`: a spec passes arguments by name")
    if a.vararg is not None:
        raise _Bad(a.vararg, f"{fn.name}: *{a.vararg.arg} is not supported\n"
                             "give every parameter a name, a type and (optionally) a default")
    if a.kwarg is not None:
        raise _Bad(a.kwarg, f"{fn.name}: **{a.kwarg.arg} is not supported\n"
                            "give every parameter a name, a type and (optionally) a default")
    defaults: list[ast.expr | None] = [None] * (len(a.args) - len(a.defaults)) + list(a.defaults)
    pairs = [*zip(a.args, defaults, strict=True), *zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    out = []
    for arg, default in pairs:
        if arg.arg in _RUNTIME_PARAMS:
            continue
        if arg.annotation is None:
            raise _Bad(arg, f'{fn.name}: parameter "{arg.arg}" has no type annotation\n'
                            f"annotate it with {VOCABULARY}")
        type_, bounds = _annotation(arg.annotation, names)
        text = REQUIRED if default is None else _default(default, type_)
        out.append(Param(arg.arg, type_, text, docs.get(arg.arg, ""), **bounds))
    return tuple(out)


def _annotation(node: ast.AST, names: _Names) -> tuple[T.Type, dict[str, Any]]:
    """A type and its bounds (from ``Annotated[X, Range(...)]``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
        try:
            inner = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            raise _Bad(node, f"the annotation {node.value!r} does not parse\n"
                             f"use {VOCABULARY}") from None
        ast.copy_location(inner, node)
        for sub in ast.walk(inner):
            ast.copy_location(sub, node)
        return _annotation(inner, names)
    if isinstance(node, ast.Subscript) and names.typing(node.value) == "Annotated":
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        type_ = _type(elts[0], names)
        bounds: dict[str, Any] = {}
        for meta in elts[1:]:
            if isinstance(meta, ast.Call) and names.typing(meta.func) == "Range":
                bounds.update(_range(meta))
            elif isinstance(meta, ast.Constant) and isinstance(meta.value, str):
                continue  # a help string: the docstring's Args section is what specc shows
            else:
                raise _Bad(meta, "Annotated[...] takes a Range(lo=..., hi=...) here\n"
                                 "other metadata is not understood")
        if bounds and not _numeric(type_):
            raise _Bad(node, "Range bounds apply to int or float parameters")
        return type_, bounds
    return _type(node, names), {}


def _numeric(t: T.Type) -> bool:
    match t:
        case T.Prim(name="int") | T.Prim(name="float") | T.Prim(name="fraction"):
            return True
        case T.Optional_(inner=i) | T.ListOf(item=i):
            return _numeric(i)
        case T.Union_(options=opts):  # `float | Searched`: the bounds are the number's
            return any(_numeric(o) for o in opts)
    return False


def _range(call: ast.Call) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = ("lo", "hi", "lo_open", "hi_open")
    if len(call.args) > 2:
        raise _Bad(call, "Range takes lo and hi (and lo_open, hi_open by name)")
    for key, value in [*zip(keys, call.args, strict=False),
                       *((k.arg, k.value) for k in call.keywords)]:
        if key not in keys:
            raise _Bad(call, f'Range has no option "{key}"\noptions: {", ".join(keys)}')
        try:
            v = _literal(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise _Bad(value, f"Range({key}=...) must be a literal") from None
        if key.endswith("_open"):
            if not isinstance(v, bool):
                raise _Bad(value, f"Range({key}=...) is true or false")
        elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _Bad(value, f"Range({key}=...) must be a number")
        out[key] = v
    return out


def _type(node: ast.AST, names: _Names) -> T.Type:  # noqa: C901 - one case per form
    if isinstance(node, ast.Constant) and node.value is None:
        raise _Bad(node, f"None alone is not a parameter type\nuse X | None; types: {VOCABULARY}")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation(node, names)[0]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], names, node)
    name = names.typing(node.value if isinstance(node, ast.Subscript) else node)
    if isinstance(node, (ast.Name, ast.Attribute)):
        if name in _PRIMS:
            return _PRIMS[name]
        if name in KIND_TYPES:
            return T.Kind(KIND_TYPES[name])
    elif isinstance(node, ast.Subscript):
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name == "Literal":
            values = []
            for e in elts:
                if not (isinstance(e, ast.Constant) and isinstance(e.value, str)):
                    raise _Bad(e, "Literal[...] takes strings here (an enum of words)")
                values.append(e.value)
            return T.Enum(tuple(values))
        if name in ("list", "List", "Sequence"):
            return T.ListOf(_type(elts[0], names))
        if name in ("tuple", "Tuple"):
            if len(elts) == 2 and isinstance(elts[1], ast.Constant) and elts[1].value is ...:
                return T.ListOf(_type(elts[0], names))
            return T.TupleOf(tuple(_type(e, names) for e in elts))
        if name == "Optional":
            return T.Optional_(_type(elts[0], names))
        if name == "Union":
            return _union(elts, names, node)
        if name == "Annotated":
            raise _Bad(node, "Annotated[...] only at the outside of an annotation")
    shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    raise _Bad(node, f"unsupported annotation `{shown}`\nuse {VOCABULARY}")


def _union(parts: Iterable[ast.AST], names: _Names, node: ast.AST) -> T.Type:
    flat: list[ast.AST] = []
    stack = list(parts)
    while stack:
        p = stack.pop(0)
        if isinstance(p, ast.BinOp) and isinstance(p.op, ast.BitOr):
            stack[:0] = [p.left, p.right]
        else:
            flat.append(p)
    optional = any(isinstance(p, ast.Constant) and p.value is None for p in flat)
    types = [_type(p, names) for p in flat if not (isinstance(p, ast.Constant) and p.value is None)]
    if not types:
        raise _Bad(node, "a union needs a type besides None")
    inner = types[0] if len(types) == 1 else T.Union_(tuple(types))
    return T.Optional_(inner) if optional else inner


def _literal(node: ast.AST) -> Any:
    """``ast.literal_eval``, with the common cases (a constant, a negated one) done directly."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(
            node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value
    return ast.literal_eval(node)


def _default(node: ast.expr, t: T.Type) -> str:
    """A Python literal default as .exp source text."""
    try:
        value = _literal(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise _Bad(node, f"the default `{ast.unparse(node)}` is not a literal\n"
                         "defaults are literals (numbers, strings, True/False, None, lists, "
                         "tuples); compute values inside the builder") from None
    return _exp_text(value, node, t, top=True)


_enum_words = T.enum_words


def _exp_text(value: Any, node: ast.AST, t: T.Type, top: bool = False) -> str:
    match value:
        case None:
            return "none"
        case bool():
            return "true" if value else "false"
        case int() | float():
            if value and not 1e-300 <= abs(value) <= 1e300:
                raise _Bad(node, f"the default {value!r} is beyond what a spec can write "
                                 "(1e-300 to 1e300 in magnitude, or 0)")
            return repr(value)
        case str():
            if value in _enum_words(t) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                return value
            if _spec_source(value, t):
                return value
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}"'
        case list():
            return "[" + ", ".join(_exp_text(v, node, t) for v in value) + "]"
        case tuple() if top and isinstance(t.inner if isinstance(t, T.Optional_) else t,
                                           T.ListOf):
            # a list parameter's immutable default: `ops: list[str] = ("+", "-")`
            return "[" + ", ".join(_exp_text(v, node, t) for v in value) + "]"
        case tuple():
            inner = ", ".join(_exp_text(v, node, t) for v in value)
            return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise _Bad(node, f"the default {value!r} is not a value a spec can write\n"
                     "use numbers, strings, booleans, None, lists or tuples")


_PERCENT = re.compile(r"\d+(\.\d+)?%")
_RANGE = re.compile(r"-?\d+\.\.-?\d+")


def _spec_source(value: str, t: T.Type) -> bool:
    """Whether a string default is spec source rather than a string: a percentage for a
    Fraction, ``lo..hi`` for an IntRange, a component name or call (``lora(rank = 2)``) for a
    parameter that takes a kind (docs/components.md)."""
    inner = t.inner if isinstance(t, T.Optional_) else t
    options = inner.options if isinstance(inner, T.Union_) else (inner,)
    if T.FRACTION in options and _PERCENT.fullmatch(value):
        return True
    if T.RangeT() in options and _RANGE.fullmatch(value):
        return True
    if not T.kinds_in(t) or T.STR in options:
        return False
    try:
        node = ast.parse(value, mode="eval").body
    except SyntaxError:
        return False
    if isinstance(node, ast.Name):
        return True
    plain = (ast.Constant, ast.Name)  # a literal or a bare word (true, none, an enum's word)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and all(isinstance(a, plain) for a in node.args)
            and all(k.arg and isinstance(k.value, plain) for k in node.keywords))


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and the ``Args:`` section's help per parameter."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary.append(line.strip())
    args: dict[str, str] = {}
    in_args = False
    current = None
    indent = 0
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if not in_args:
            continue
        if stripped.endswith(":") and not line.startswith((" ", "\t")):
            break
        m = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if m and (current is None or len(line) - len(line.lstrip())
                  <= indent):  # a new parameter at the section's indent
            current = m.group(1)
            indent = len(line) - len(line.lstrip())
            args[current] = m.group(2).strip()
        elif current is not None and stripped:
            args[current] = (args[current] + " " + stripped).strip()
        elif not stripped and current is not None:
            current = None
    return " ".join(summary).rstrip("."), args


# ----------------------------------------------------------------------------- entry points
def locate(module: str) -> Path | None:
    """The source file of ``module``, found segment by segment without executing anything
    (``importlib.util.find_spec`` would run the package's ``__init__``)."""
    from importlib.machinery import PathFinder

    parts = module.split(".")
    search: list[str] | None = None
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = PathFinder.find_spec(name, search)
        if spec is None and i == 0:
            spec = _meta_path_spec(name)  # an editable install's finder maps names to paths
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _meta_path_spec(name: str) -> Any:
    from importlib.machinery import BuiltinImporter, FrozenImporter, PathFinder

    for finder in sys.meta_path:
        if finder in (BuiltinImporter, FrozenImporter, PathFinder) or \
                not type(finder).__module__.startswith("__editable__"):
            continue
        try:
            spec = finder.find_spec(name, None)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a broken finder is not ours to report
            continue
        if spec is not None:
            return spec
    return None


@attrs.frozen
class EntryPoint:
    name: str
    module: str
    dist: str


@functools.lru_cache(maxsize=1)
def entry_points() -> tuple[EntryPoint, ...]:
    """Installed ``specc.components`` entry points (their metadata only)."""
    from importlib import metadata

    found = []
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist
        label = f"{dist.name} {dist.version}" if dist is not None else ""
        found.append(EntryPoint(ep.name, ep.value.split(":")[0].strip(), label))
    return tuple(sorted(found, key=lambda e: (e.name, e.module)))


# specc's own components, one module per family. The generic ones follow the contracts of
# docs/components.md (any model, the generic loop); the others are the language-model loop's
# (a vocabulary, token data, Hugging Face causal LMs, circuits) and take its context.
GENERIC_MODULES = ("specc.components.generic", "specc.components.training")
BUILTIN_MODULES = ("specc.components.models", "specc.components.vocab",
                   "specc.components.tasks", "specc.components.data",
                   "specc.components.policies", "specc.components.training",
                   "specc.components.generic", "specc.components.metrics",
                   "specc.components.mediation",
                   "specc.circuits.components", "specc.report.parts",
                   "specc.components.trackers")


@functools.lru_cache(maxsize=1)
def builtin_components() -> tuple[Component, ...]:
    """specc's own ``@component`` builders (the ``specc`` entry point's module), read from the
    source next to this package so a source checkout works uninstalled too."""
    root = Path(__file__).resolve().parent.parent
    out: list[Component] = []
    for module in BUILTIN_MODULES:
        path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
        read = read_file(path, str(path), Origin("specc", module=module))
        if read.diagnostics:  # a bug in specc, not the user's mistake
            raise AssertionError(dg.render_all(read.diagnostics, dg.Sources()))
        # Built-ins hash like the hand-written ones: by name and arguments, not by source.
        out += [attrs.evolve(c, origin=attrs.evolve(c.origin, sha256="")) for c in
                read.components]
    return tuple(out)


def plugin_reads() -> list[tuple[EntryPoint, Path | None, Read | None]]:
    """Every installed plug-in's components, read (not imported); specc's own is skipped."""
    out = []
    for ep in entry_points():
        if ep.module in BUILTIN_MODULES:
            continue
        path = locate(ep.module)
        if path is None:
            out.append((ep, None, None))
            continue
        origin = Origin(ep.name, module=ep.module, dist=ep.dist)
        try:
            read = read_file(path, str(path), origin)
        except Exception:  # noqa: BLE001 - an unreadable plug-in is reported by the caller
            out.append((ep, path, None))
            continue
        out.append((ep, path, read))
    return out


@functools.lru_cache(maxsize=1)
def generic_names() -> frozenset[str]:
    """specc's own builders that follow the generic contracts (read from source)."""
    return frozenset(c.name for c in builtin_components()
                     if c.origin.module in GENERIC_MODULES)


def is_api_component(cfg: Any) -> bool:
    """Whether a component's run configuration is built by a ``specc.api`` builder (a
    component file's, a plug-in's or specc's own generic ones)."""
    return isinstance(cfg, dict) and ("python" in cfg or cfg.get("component") in generic_names())
