"""``specc lsp``: a language server for ``.exp`` files on pygls (stdio).

- diagnostics as you type, from the real checker (every error, located; the same codes and
  help as ``specc check``), for the open file and the files it imports;
- hover: a component's documentation and parameters (the catalogue's, plug-ins and
  ``import python`` components included), a parameter's type, default and documentation, a
  train or experiment field's;
- completion: parameter names inside a component's parentheses, fields inside ``train { }``,
  component names and the names a spec declares elsewhere;
- go to definition: a declared name (``model base = ...``, ``let``, an experiment) in this file
  or an imported one;
- formatting through ``specc fmt``.

Everything runs what ``specc check`` runs: nothing is imported from the spec and no run starts.
Note [LSP positions]: LSP counts lines and characters from 0; specc's spans from 1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.catalogue import schema
from specc.lang import syntax as S

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


@attrs.define
class Analysis:
    """What the checker knows of one document's current text."""

    diagnostics: list[dg.Diagnostic]
    loaded: Any  # specc.compiler.load_modules.Loaded, or None when it does not parse
    registry: C.Registry


def analyse(text: str, path: str) -> Analysis:
    from specc.compiler.pipeline import compile_source, registry_for

    result = compile_source(text, path, stop_after="check")
    registry = result.registry if result.registry is not None else registry_for(None)
    return Analysis(list(result.diagnostics), result.loaded, registry)


def lsp_diagnostics(analysis: Analysis, path: str) -> dict[str, list[dict[str, Any]]]:
    """Diagnostics per file (the open one first, then imported ones that have any)."""
    out: dict[str, list[dict[str, Any]]] = {path: []}
    for d in analysis.diagnostics:
        file = d.span.file if d.span.file not in ("<input>", "") else path
        text = d.message + (f"\nhelp: {d.help}" if d.help else "")
        text += "".join(f"\nnote: {n}" for n in d.notes)
        out.setdefault(file, []).append({
            "range": _range(d.span), "message": text, "code": d.code, "source": "specc",
            "severity": 1 if d.severity == "error" else 2})
    return out


def _range(span: dg.Span) -> dict[str, dict[str, int]]:
    end_line, end_col = max((span.end_line, span.end_col), (span.line, span.col + 1))
    return {"start": {"line": span.line - 1, "character": span.col - 1},
            "end": {"line": end_line - 1, "character": end_col - 1}}


# ------------------------------------------------------------------ the syntax tree at a point
def _inside(span: dg.Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def _nodes(node: Any) -> Any:
    """Every syntax node under ``node``, depth first."""
    yield node
    if attrs.has(type(node)):
        for field in attrs.fields(type(node)):
            value = getattr(node, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if attrs.has(type(item)) and not isinstance(item, dg.Span):
                    yield from _nodes(item)


def _at(module: S.Module, line: int, col: int) -> list[Any]:
    """The nodes whose span holds the point, outermost first."""
    return [n for n in _nodes(module) if isinstance(getattr(n, "span", None), dg.Span)
            and _inside(n.span, line, col)]


def _component_doc(c: C.Component) -> str:
    lines = [f"**{c.name}** ({c.kind}) — {c.doc.splitlines()[0] if c.doc else ''}".rstrip()]
    rest = "\n".join(c.doc.splitlines()[1:]).strip()
    if rest:
        lines.append(rest)
    if c.params:
        lines.append("")
        lines.extend(_param_line(p) for p in c.params)
    if c.origin.provider != "specc":
        lines.append(f"\n_from {c.origin.provider}_")
    return "\n".join(lines)


def _param_line(p: C.Param) -> str:
    default = "required" if p.default == C.REQUIRED else f"= {p.default}"
    return f"- `{p.name}`: {p.type} {default}" + (f" — {p.doc}" if p.doc else "")


def _called(call: S.Call) -> str | None:
    func = call.func
    if isinstance(func, S.Name):
        return func.id
    if isinstance(func, S.Member) and isinstance(func.obj, S.Name):
        return f"{func.obj.id}.{func.name}"
    return None


def hover(analysis: Analysis, path: str, line: int, col: int) -> str | None:
    """Markdown for the point (1-based line and column), or None."""
    module = _module(analysis, path)
    if module is None:
        return None
    nodes = _at(module, line, col)
    calls = [n for n in nodes if isinstance(n, S.Call)]
    for node in reversed(nodes):
        if isinstance(node, S.Arg) and node.name and calls:
            name_end = node.span.col + len(node.name)
            if node.span.line == line and col <= name_end:
                comp = analysis.registry.lookup(_called(calls[-1]) or "")
                param = comp.param(node.name) if comp else None
                if param is not None:
                    return f"**{comp.name}**.`{param.name}`\n\n{_param_line(param)}"
        if isinstance(node, S.Name):
            comp = analysis.registry.lookup(node.id)
            if comp is not None:
                return _component_doc(comp)
            return None
        if isinstance(node, S.Assign) and _inside(node.target_span, line, col):
            return _field_doc(nodes, node.target)
    return None


def _field_doc(nodes: list[Any], target: tuple[str, ...]) -> str | None:
    blocks = [n for n in nodes if isinstance(n, S.Block)]
    if blocks:
        params = schema.BLOCKS.get((blocks[-1].kind, blocks[-1].variant), ())
    else:
        params = schema.EXPERIMENT
        if target and target[0] == "train":
            params, target = schema.TRAIN, target[1:]
    found = schema.field(params, target[0]) if target else None
    return _param_line(found) if found is not None else None


def _module(analysis: Analysis, path: str) -> S.Module | None:
    loaded = analysis.loaded
    if loaded is None:
        return None
    return loaded.modules.get(path) or loaded.modules.get(loaded.root)


def definition(analysis: Analysis, path: str, line: int, col: int) -> dg.Span | None:
    """Where the name at the point is declared: this experiment's declarations first, then
    every visible file's lets, declarations and experiments."""
    loaded = analysis.loaded
    module = _module(analysis, path)
    if module is None:
        return None
    nodes = _at(module, line, col)
    names = [n for n in nodes if isinstance(n, S.Name)]
    if not names:
        return None
    wanted = names[-1].id.split(".")[0]
    experiments = [n for n in nodes if isinstance(n, S.Experiment)]
    scopes = [experiments[-1]] if experiments else []
    root = path if path in loaded.modules else loaded.root
    for visible in loaded.visible(root):
        scopes.append(loaded.modules[visible])
    for scope in scopes:
        for node in _nodes(scope):
            if isinstance(node, (S.Decl, S.Let, S.Experiment)) and node.name == wanted:
                return node.name_span  # type: ignore[no-any-return]
    return None


# ------------------------------------------------------------------ completion, from the text
@attrs.frozen
class Item:
    label: str
    kind: str  # "field", "component", "name"
    detail: str
    doc: str = ""
    insert: str | None = None


def completions(analysis: Analysis, text: str, line: int, col: int) -> list[Item]:
    """What may be typed at the point (1-based): read from the text before it, since a spec
    being typed rarely parses."""
    lines = text.splitlines()
    current = lines[line - 1][:col - 1] if line <= len(lines) else ""
    before = "\n".join([*lines[:line - 1], current])
    call, block = _context(before)
    if call is not None:
        comp = analysis.registry.lookup(call)
        if comp is None:
            return []
        given = set(re.findall(r"([A-Za-z_]\w*)\s*=", before[before.rfind(call + "("):]))
        return [Item(p.name, "field", str(p.type), p.doc, f"{p.name} = ")
                for p in comp.params if p.name not in given]
    out: list[Item] = []
    if block is not None:
        params = schema.BLOCKS.get(block, ())
        out += [Item(p.name, "field", str(p.type), p.doc, f"{p.name} = ") for p in params]
    elif _in_experiment(before):
        out += [Item(p.name, "field", str(p.type), p.doc, f"{p.name} = ")
                for p in schema.EXPERIMENT]
    seen: set[str] = set()
    for c in analysis.registry.components:
        if c.name not in seen:
            seen.add(c.name)
            out.append(Item(c.name, "component", c.kind, c.doc))
    module = _module(analysis, analysis.loaded.root) if analysis.loaded else None
    if module is not None:
        for node in _nodes(module):
            if isinstance(node, (S.Decl, S.Let, S.Experiment)) and node.name not in seen:
                seen.add(node.name)
                out.append(Item(node.name, "name", getattr(node, "kind", "experiment")
                                if not isinstance(node, S.Let) else "let"))
    return out


def _context(before: str) -> tuple[str | None, tuple[str, str | None] | None]:
    """(the component whose parentheses hold the point, the block whose braces do)."""
    depth_paren = depth_brace = 0
    i = len(before) - 1
    while i >= 0:
        ch = before[i]
        if ch == ")":
            depth_paren += 1
        elif ch == "(":
            if depth_paren == 0:
                m = re.search(r"([A-Za-z_][\w.]*)\s*$", before[:i])
                return (m.group(1) if m else None), None
            depth_paren -= 1
        elif ch == "}":
            depth_brace += 1
        elif ch == "{":
            if depth_brace == 0:
                m = re.search(r"\b(train|sweep|search)\s*([A-Za-z_]\w*)?\s*$", before[:i])
                if m:
                    return None, (m.group(1), m.group(2))
                return None, None
            depth_brace -= 1
        i -= 1
    return None, None


def _in_experiment(before: str) -> bool:
    return bool(re.search(r"\bexperiment\b", before))


# ------------------------------------------------------------------ the server
def server() -> Any:
    from lsprotocol import types as L
    from pygls.lsp.server import LanguageServer

    from specc import format_source

    ls = LanguageServer("specc", "0.1.0")
    state: dict[str, Analysis] = {}

    def refresh(uri: str) -> None:
        doc = ls.workspace.get_text_document(uri)
        path = path_of(uri)
        analysis = analyse(doc.source, path)
        state[uri] = analysis
        for file, items in lsp_diagnostics(analysis, path).items():
            target = uri if file == path else Path(file).resolve().as_uri()
            ls.text_document_publish_diagnostics(L.PublishDiagnosticsParams(
                uri=target, diagnostics=[L.Diagnostic(
                    range=L.Range(start=L.Position(**d["range"]["start"]),
                                  end=L.Position(**d["range"]["end"])),
                    message=d["message"], code=d["code"], source="specc",
                    severity=L.DiagnosticSeverity(d["severity"])) for d in items]))

    @ls.feature(L.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: L.DidOpenTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @ls.feature(L.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: L.DidChangeTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @ls.feature(L.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: L.DidSaveTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    def analysis_of(uri: str) -> Analysis:
        if uri not in state:
            refresh(uri)
        return state[uri]

    @ls.feature(L.TEXT_DOCUMENT_HOVER)
    def on_hover(params: L.HoverParams) -> L.Hover | None:
        uri, pos = params.text_document.uri, params.position
        text = hover(analysis_of(uri), path_of(uri), pos.line + 1, pos.character + 1)
        if text is None:
            return None
        return L.Hover(contents=L.MarkupContent(kind=L.MarkupKind.Markdown, value=text))

    @ls.feature(L.TEXT_DOCUMENT_COMPLETION,
                L.CompletionOptions(trigger_characters=["(", ",", " "]))
    def on_completion(params: L.CompletionParams) -> L.CompletionList:
        uri, pos = params.text_document.uri, params.position
        text = ls.workspace.get_text_document(uri).source
        kinds = {"field": L.CompletionItemKind.Property,
                 "component": L.CompletionItemKind.Function,
                 "name": L.CompletionItemKind.Variable}
        items = [L.CompletionItem(label=i.label, kind=kinds[i.kind], detail=i.detail,
                                  documentation=i.doc or None, insert_text=i.insert)
                 for i in completions(analysis_of(uri), text, pos.line + 1, pos.character + 1)]
        return L.CompletionList(is_incomplete=False, items=items)

    @ls.feature(L.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: L.DefinitionParams) -> L.Location | None:
        uri, pos = params.text_document.uri, params.position
        span = definition(analysis_of(uri), path_of(uri), pos.line + 1, pos.character + 1)
        if span is None:
            return None
        target = uri if span.file == path_of(uri) else Path(span.file).resolve().as_uri()
        r = _range(span)
        return L.Location(uri=target, range=L.Range(start=L.Position(**r["start"]),
                                                    end=L.Position(**r["end"])))

    @ls.feature(L.TEXT_DOCUMENT_FORMATTING)
    def on_format(params: L.DocumentFormattingParams) -> list[L.TextEdit] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        out, _ = format_source(doc.source, path_of(params.text_document.uri))
        if out is None or out == doc.source:
            return [] if out is not None else None
        end = L.Position(line=len(doc.lines), character=0)
        return [L.TextEdit(range=L.Range(start=L.Position(line=0, character=0), end=end),
                           new_text=out)]

    return ls


def main() -> int:
    server().start_io()
    return 0
