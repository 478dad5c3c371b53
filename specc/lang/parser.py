"""Parse .exp text into the AST; lark is used here only and its types never leave this module."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from specc import diagnostics as dg
from specc.lang import syntax as S
from specc.lang.syntax_errors import EXAMPLES

_GRAMMAR = Path(__file__).with_name("grammar.lark")

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "CMP": "a comparison",
    "ADD": "'+' or '-'",
    "MUL": "'*', '/' or '//'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "EQUAL": "'='",
    "DOT": "'.'",
    "TILDE": "'~'",
    "_SEMI": "';'",
    "$END": "the end of the file",
    "MINUS": "'-'",
}

_SUFFIX = {"k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "B": Decimal(10) ** 9,
           "T": Decimal(10) ** 12}


@functools.cache
def _lark() -> Any:
    from lark import Lark

    return Lark(
        _GRAMMAR.read_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,
        lexer_callbacks={"COMMENT": _on_comment},
    )


# Note [Comment sink]: lark's lexer callbacks see ignored COMMENT tokens; the parser is built
# once, so the callback appends to whichever list the current parse_text call installed.
_SINK: list[list[S.Comment]] = []


def _on_comment(tok: Any) -> Any:
    if _SINK:
        _SINK[-1].append(S.Comment(text=str(tok).rstrip(), line=tok.line, col=tok.column))
    return tok


# Limits that keep every later stage (recursive by nature) bounded for any input: a literal's
# magnitude (a float holds up to 1.8e308) and how deep a spec's syntax tree may nest.
MAX_EXPONENT = 300
MAX_NESTING = 100


def number_value(text: str) -> tuple[int | float, bool]:
    """The value of a number literal and whether it is a percentage; ``ValueError`` when its
    magnitude is beyond 1e300 (or a nonzero one is below 1e-300).

    Example:
        >>> number_value("1.5B"), number_value("5%"), number_value("3e-4")
        ((1500000000, False), (0.05, True), (0.0003, False))
    """
    percent = text.endswith("%")
    body = text[:-1] if percent or text[-1] in _SUFFIX else text
    mult = _SUFFIX.get(text[-1], Decimal(1))
    try:
        dec = Decimal(body)
    except InvalidOperation as exc:  # the token regex makes this unreachable; kept for safety
        raise ValueError(text) from exc
    if dec and not -MAX_EXPONENT <= dec.adjusted() + mult.adjusted() <= MAX_EXPONENT:
        raise ValueError(text)
    if percent:
        return float(dec / 100), True
    value = dec * mult
    if (text[-1] in _SUFFIX or body.isdigit()) and value == value.to_integral_value():
        return int(value), False
    return float(value), False


def _describe_token(tok: Any) -> str:
    if tok.type == "$END":
        return "the end of the file"
    return f"{tok.value!r}" if tok.type in _TERMINAL_WORDS or tok.type.isupper() else tok.type


def _expected(names: set[str]) -> str:
    words = set()
    for n in names:
        if n in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[n])
        elif n.startswith("__ANON") or n.startswith("_"):
            continue
        else:
            words.add(f"'{n.lower()}'")
    listed = sorted(words)
    if len(listed) > 6:
        listed = [*listed[:6], "..."]
    return ", ".join(listed) or "something else"


class _Builder:
    """Turns a lark tree into AST nodes (an explicit transformer: no Tree survives)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diags: list[dg.Diagnostic] = []

    def span(self, node: Any) -> dg.Span:
        meta = getattr(node, "meta", node)
        if getattr(meta, "empty", False):
            return dg.Span(file=self.file)
        return dg.Span(file=self.file, line=meta.line, col=meta.column,
                       end_line=meta.end_line, end_col=meta.end_column)

    # -- expressions
    def expr(self, t: Any) -> S.Expr:  # noqa: C901 - one dispatch table reads best here
        from lark import Token

        if isinstance(t, Token):
            if t.type == "NAME":
                return S.Name(id=str(t), span=self.span(t))
            raise AssertionError(t.type)
        sp = self.span(t)
        kids = t.children
        match t.data:
            case "number":
                try:
                    value, percent = number_value(str(kids[0]))
                except ValueError:
                    what = f"number {_short(str(kids[0]))}"
                    tiny = "e-" in str(kids[0]).lower()
                    self.diags.append(dg.make(
                        "number-too-large", sp, what=what, how="small" if tiny else "large",
                        limit=f"1e{MAX_EXPONENT} in magnitude" if not tiny else
                        f"1e-{MAX_EXPONENT} in magnitude for a nonzero number",
                        help="write 0 for a value this small" if tiny else None))
                    value, percent = 0, False
                return S.Number(value=value, text=str(kids[0]), percent=percent, span=sp)
            case "string":
                return S.String(value=_unquote(str(kids[0])), span=sp)
            case "true" | "false":
                return S.Bool(value=t.data == "true", span=sp)
            case "none":
                return S.NoneLit(span=sp)
            case "name":
                return S.Name(id=str(kids[0]), span=sp)
            case "list":
                return S.ListExpr(items=[self.expr(k) for k in kids if k is not None], span=sp)
            case "tuple":
                return S.TupleExpr(items=[self.expr(k) for k in kids if k is not None], span=sp)
            case "range":
                return S.Range(lo=self.expr(kids[0]), hi=self.expr(kids[1]), span=sp)
            case "binop" | "compare":
                return S.BinOp(op=str(kids[1]), left=self.expr(kids[0]),
                               right=self.expr(kids[2]), span=sp)
            case "and_op" | "or_op":
                return S.BinOp(op=t.data[:-3], left=self.expr(kids[0]),
                               right=self.expr(kids[1]), span=sp)
            case "neg":
                return S.UnaryOp(op="-", operand=self.expr(kids[0]), span=sp)
            case "not_op":
                return S.UnaryOp(op="not", operand=self.expr(kids[0]), span=sp)
            case "maximize" | "minimize":
                return S.Directed(direction=t.data, value=self.expr(kids[0]), span=sp)
            case "member":
                return S.Member(obj=self.expr(kids[0]), name=str(kids[1]), span=sp)
            case "call":
                args = [self.arg(a) for a in kids[1].children if a is not None]
                return S.Call(func=self.expr(kids[0]), args=args, span=sp)
        raise AssertionError(t.data)

    def arg(self, t: Any) -> S.Arg:
        if t.data == "kwarg":
            return S.Arg(name=str(t.children[0]), value=self.expr(t.children[1]),
                         span=self.span(t))
        return S.Arg(name=None, value=self.expr(t.children[0]), span=self.span(t))

    # -- statements
    def target(self, t: Any) -> tuple[tuple[str, ...], dg.Span]:
        return tuple(str(c) for c in t.children), self.span(t)

    def body(self, kids: list[Any]) -> list[S.Stmt]:
        from lark import Tree

        return [self.stmt(k) for k in kids if isinstance(k, Tree)]

    def stmt(self, t: Any) -> S.Stmt:
        sp = self.span(t)
        kids = t.children
        match t.data:
            case "import_stmt":
                return S.Import(path=_unquote(str(kids[-1])), python=kids[0] is not None,
                                span=sp)
            case "let_stmt":
                return S.Let(name=str(kids[0]), value=self.expr(kids[1]), span=sp,
                             name_span=self.span(kids[0]))
            case "decl":
                return S.Decl(kind=str(kids[0]), name=str(kids[1]), value=self.expr(kids[2]),
                              span=sp, kind_span=self.span(kids[0]),
                              name_span=self.span(kids[1]))
            case "experiment":
                ext = kids[1]
                return S.Experiment(
                    name=str(kids[0]),
                    extends=str(ext.children[0]) if ext is not None else None,
                    body=self.body(kids[2:]),
                    span=sp,
                    name_span=self.span(kids[0]),
                    extends_span=self.span(ext.children[0]) if ext is not None else sp,
                )
            case "assign":
                target, tsp = self.target(kids[0])
                return S.Assign(target=target, value=self.expr(kids[1]), span=sp,
                                target_span=tsp)
            case "block":
                variant = kids[1]
                head_end = variant if variant is not None else kids[0]
                head = dg.Span(file=self.file, line=kids[0].line, col=kids[0].column,
                               end_line=head_end.end_line, end_col=head_end.end_column)
                return S.Block(kind=str(kids[0]),
                               variant=str(variant) if variant is not None else None,
                               body=self.body(kids[2:]), span=sp, head_span=head)
            case "check_stmt":
                return S.Check(expr=self.expr(kids[0]), span=sp)
            case "measure_stmt":
                return S.Measure(expr=self.expr(kids[0]), span=sp)
            case "checkpoints":
                return S.Checkpoints(every=self.expr(kids[0]), unit=str(kids[1]),
                                     body=self.body(kids[2:]), span=sp,
                                     unit_span=self.span(kids[1]))
            case "profile":
                return S.Profile(name=str(kids[0]), body=self.body(kids[1:]), span=sp,
                                 name_span=self.span(kids[0]))
            case "axis":
                return self.axis(t)
            case "dist":
                target, tsp = self.target(kids[0])
                when = self.expr(kids[2].children[0]) if kids[2] is not None else None
                return S.Dist(target=target, dist=self.expr(kids[1]), when=when, span=sp,
                              target_span=tsp)
            case "zip_stmt":
                return S.Zip(axes=[self.axis(k) for k in kids if k is not None], span=sp)
        raise AssertionError(t.data)

    def axis(self, t: Any) -> S.Axis:
        kids = t.children
        target, tsp = self.target(kids[0])
        race = any(getattr(k, "data", None) == "race" for k in kids[2:])
        whens = [k for k in kids[2:] if getattr(k, "data", None) == "when"]
        when = self.expr(whens[0].children[0]) if whens else None
        return S.Axis(target=target, values=self.expr(kids[1]), race=race, when=when,
                      span=self.span(t), target_span=tsp)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def parse_text(text: str, file: str = "<input>") -> tuple[S.Module | None, list[dg.Diagnostic]]:
    """Parse one file's text; returns the module (None on syntax errors) and the diagnostics."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

    nul = text.find("\x00")
    if nul >= 0:  # no path, name or number holds one, and the OS refuses paths with one
        line, start = text.count("\n", 0, nul) + 1, text.rfind("\n", 0, nul) + 1
        return None, [dg.make("syntax-unexpected-char", _point(file, line, nul - start + 1),
                              char="\x00", help="a NUL character (is this a text file?)")]
    lark = _lark()
    comments: list[S.Comment] = []
    diags: list[dg.Diagnostic] = []
    error_lines: set[int] = set()

    def on_error(exc: UnexpectedInput) -> bool:
        line = getattr(exc, "line", 0)
        if line not in error_lines and len(diags) < 20:
            error_lines.add(line)
            diags.append(_syntax_diag(exc, file, text))
        return True

    _SINK.append(comments)
    try:
        tree = lark.parse(text, on_error=on_error)
    except UnexpectedCharacters as exc:
        diags.append(_syntax_diag(exc, file, text))
        return None, diags
    except UnexpectedToken as exc:
        if exc.line not in error_lines:
            diags.append(_syntax_diag(exc, file, text))
        return None, diags
    except UnexpectedInput as exc:
        diags.append(_syntax_diag(exc, file, text))
        return None, diags
    except RecursionError:  # kept for safety: lark's LALR parser does not recurse
        diags.append(dg.make("nesting-too-deep", _point(file, 1, 1), limit=MAX_NESTING))
        return None, diags
    finally:
        _SINK.pop()
    if diags:
        return None, diags
    deep = _too_deep(tree, MAX_NESTING)
    builder = _Builder(file)
    if deep is not None:
        return None, [dg.make("nesting-too-deep", builder.span(deep), limit=MAX_NESTING,
                              help="give inner parts a name with let, or write a long sum "
                                   "as a list")]
    items = builder.body(tree.children)
    if builder.diags:
        return None, builder.diags
    lines = text.count("\n") + 1
    module = S.Module(file=file, items=items, comments=comments,
                      span=dg.Span(file=file, line=1, col=1, end_line=lines, end_col=1))
    return module, diags


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _too_deep(tree: Any, limit: int) -> Any | None:
    """The first subtree nested ``limit`` levels deep (found without recursion), or None."""
    from lark import Tree

    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return node
        stack.extend((k, depth + 1) for k in node.children if isinstance(k, Tree))
    return None


def _syntax_diag(exc: Any, file: str, text: str) -> dg.Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        hint = None
        if char == "'":
            hint = "strings use double quotes"
        elif char == ":":
            hint = "use '=' to give a value"
        return dg.make("syntax-unexpected-char", _point(file, line, col), help=hint, char=char)
    label = None
    try:
        label = exc.match_examples(_lark().parse, EXAMPLES, use_accepts=True)
    except Exception:  # noqa: BLE001 - labelling is best effort; the plain message stays
        label = None
    if (isinstance(exc, UnexpectedToken) and exc.token.type == "$END") or isinstance(
        exc, UnexpectedEOF
    ):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        expected = _expected(set(getattr(exc, "expected", set()) or exc.accepts or set()))
        return dg.make("syntax-unexpected-eof", _point(file, line, col), help=label,
                       expected=expected)
    tok = exc.token
    expected = _expected(set(exc.accepts or exc.expected))
    history = getattr(exc, "token_history", None) or []
    prev = history[-1] if history else None
    if prev is not None and prev.end_line is not None and prev.end_line < line:
        # The mistake is at the end of the previous line (a missing '=' or ','), not here.
        span = _point(file, prev.end_line, prev.end_column)
        return dg.make("syntax-unexpected-token", span, help=label,
                       found=f"line break after {str(prev.value)!r}", expected=expected)
    width = max(1, len(str(tok.value)))
    span = dg.Span(file=file, line=line, col=col, end_line=line, end_col=col + width)
    return dg.make("syntax-unexpected-token", span, help=label, found=_describe_token(tok),
                   expected=expected)


def _point(file: str, line: int, col: int) -> dg.Span:
    return dg.Span(file=file, line=line, col=col, end_line=line, end_col=col + 1)
