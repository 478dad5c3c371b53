"""Print an AST back to canonical .exp text, keeping every comment (``specc fmt``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from specc.lang import syntax as S

WIDTH: Final = 100
INDENT: Final = "  "

# Binding strength of each expression form; a child weaker than its slot is parenthesised.
_PREC: Final = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6}
_CMP: Final = {"<", "<=", "==", "!=", ">=", ">"}


def _prec(e: S.Expr) -> int:
    match e:
        case S.Directed():
            return 0
        case S.BinOp(op=op):
            return _PREC["cmp"] if op in _CMP else _PREC[op]
        case S.Range():
            return _PREC["cmp"]
        case S.UnaryOp(op="not"):
            return _PREC["not"]
        case S.UnaryOp():
            return 7
    return 9


def quote(value: str) -> str:
    """Quote a string the way the grammar reads it back."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + body.replace("\t", "\\t") + '"'


class Printer:
    """Prints statements and expressions; comments are placed by their original lines."""

    def __init__(self, comments: Sequence[S.Comment]) -> None:
        self.comments = sorted(comments, key=lambda c: (c.line, c.col))
        self.ci = 0
        self.out: list[str] = []
        self.last_line = 0  # source line of the last thing printed
        # A source line whose trailing comment waits for a later statement on the same line
        # (`a = 1; b = 2  # about b`): the comment belongs to the last thing on its line.
        self.holding: int | None = None

    # -- comments
    def _pending(self, before: int) -> list[S.Comment]:
        taken = []
        while self.ci < len(self.comments) and self.comments[self.ci].line < before:
            taken.append(self.comments[self.ci])
            self.ci += 1
        return taken

    def _has_comment_within(self, span: object) -> bool:
        """Whether an unprinted comment lies inside ``span`` (before its last character)."""
        line, end_line, end_col = span.line, span.end_line, span.end_col  # type: ignore[attr-defined]
        i = self.ci
        while i < len(self.comments) and self.comments[i].line < line:
            i += 1
        if i >= len(self.comments):
            return False
        c = self.comments[i]
        return c.line < end_line or (c.line == end_line and c.col < end_col)

    def _trailing(self, line: int) -> str:
        parts = []
        while self.ci < len(self.comments) and self.comments[self.ci].line == line:
            parts.append(self.comments[self.ci].text)
            self.ci += 1
        return ("  " + " ".join(parts)) if parts else ""

    def _emit_comments(self, before: int, indent: int, block_start: bool) -> None:
        for c in self._pending(before):
            if c.line == self.last_line and self.out:
                self.out[-1] += "  " + c.text
                continue
            if c.line > self.last_line + 1 and not block_start and self.out and self.out[-1]:
                self.out.append("")
            self.out.append(INDENT * indent + c.text)
            self.last_line = c.line
            block_start = False

    # -- statements
    def module(self, module: S.Module) -> str:
        self.body(module.items, 0, top=True)
        self._emit_comments(10**9, 0, block_start=not self.out)
        return "\n".join(self.out).rstrip() + "\n" if self.out else ""

    def body(self, items: Sequence[S.Stmt], indent: int, top: bool = False,
             parent_end: int | None = None) -> None:
        first = True
        prev: S.Stmt | None = None
        saved = self.holding
        for i, item in enumerate(items):
            end = item.span.end_line
            later = items[i + 1].span.line if i + 1 < len(items) else parent_end
            self.holding = end if later == end else None
            forced = top and prev is not None and (
                isinstance(item, S.Experiment) or isinstance(prev, S.Experiment)
            )
            if forced and self.out and self.out[-1] != "":
                self.out.append("")
            self._emit_comments(item.span.line, indent, block_start=first or forced)
            blank = item.span.line > self.last_line + 1 and self.out and not first
            if blank and self.out and self.out[-1] != "":
                self.out.append("")
            self.stmt(item, indent)
            first = False
            prev = item
        self.holding = saved

    def _line(self, text: str, indent: int, end_line: int) -> None:
        trail = "" if end_line == self.holding else self._trailing(end_line)
        self.out.append(INDENT * indent + text + trail)
        self.last_line = end_line

    def stmt(self, s: S.Stmt, indent: int) -> None:  # noqa: C901 - one case per statement kind: a dispatch table
        end = s.span.end_line
        match s:
            case S.Import():
                self._line(f"import {'python ' if s.python else ''}{quote(s.path)}", indent,
                           end)
            case S.Let():
                self._line(f"let {s.name} = {self.expr(s.value, indent, 6 + len(s.name))}",
                           indent, end)
            case S.Decl():
                head = f"{s.kind} {s.name} = "
                self._line(head + self.expr(s.value, indent, len(head)), indent, end)
            case S.Assign():
                head = ".".join(s.target) + " = "
                self._line(head + self.expr(s.value, indent, len(head)), indent, end)
            case S.Check():
                self._line("check " + self.expr(s.expr, indent, 6), indent, end)
            case S.Measure():
                self._line("measure " + self.expr(s.expr, indent, 8), indent, end)
            case S.Axis():
                self._line(self.axis(s, indent), indent, end)
            case S.Dist():
                text = ".".join(s.target) + " ~ " + self.expr(s.dist, indent, 4)
                if s.when is not None:
                    text += " when " + self.expr(s.when, indent, len(text))
                self._line(text, indent, end)
            case S.Zip():
                axes = [self.axis(a, indent + 1) for a in s.axes]
                one = "zip(" + ", ".join(axes) + ")"
                inner = self._has_comment_within(s.span)
                if len(one) + indent * 2 <= WIDTH and not inner:
                    self._line(one, indent, end)
                else:
                    self.out.append(INDENT * indent + "zip(")
                    self.last_line = s.span.line
                    for a in s.axes:
                        # comments inside an axis (before its last line) go above it, so the
                        # zip stays multi-line when printed again
                        self._emit_comments(a.span.end_line, indent + 1, block_start=False)
                        self._line(self.axis(a, indent + 1) + ",", indent + 1, a.span.end_line)
                    self._line(")", indent, end)
            case S.Block():
                head = s.kind + (f" {s.variant}" if s.variant else "")
                self.block(head, s.body, s, indent)
            case S.Checkpoints():
                head = f"checkpoints every {self.expr(s.every, indent, 18)} {s.unit}"
                self.block(head, s.body, s, indent)
            case S.Profile():
                self.block(f"profile {s.name}", s.body, s, indent)
            case S.Experiment():
                head = f"experiment {s.name}" + (f" extends {s.extends}" if s.extends else "")
                self.block(head, s.body, s, indent, always_open=True)
            case _:
                raise AssertionError(type(s).__name__)

    def axis(self, a: S.Axis, indent: int) -> str:
        text = ".".join(a.target) + " in " + self.expr(a.values, indent, 4)
        if a.race:
            text += " race"
        if a.when is not None:
            text += " when " + self.expr(a.when, indent, len(text))
        return text

    def block(self, head: str, body: Sequence[S.Stmt], s: S.Stmt, indent: int,
              always_open: bool = False) -> None:
        simple = (S.Assign, S.Axis, S.Dist, S.Measure, S.Check)
        if (not always_open and len(body) <= 1
                and all(isinstance(b, simple) for b in body)
                and not self._has_comment_within(s.span)):
            if not body:
                self._line(head + " {}", indent, s.span.end_line)
                return
            saved_out, saved_last, saved_ci = self.out, self.last_line, self.ci
            self.out = []
            self.comments, hidden = [], self.comments
            self.stmt(body[0], 0)
            inner = self.out
            self.out, self.last_line, self.ci = saved_out, saved_last, saved_ci
            self.comments = hidden
            if len(inner) == 1 and len(inner[0]) + len(head) + 4 + indent * 2 <= WIDTH:
                self._line(f"{head} {{ {inner[0]} }}", indent, s.span.end_line)
                return
        same_line = bool(body) and body[0].span.line == s.span.line
        trail = "" if same_line else self._trailing(s.span.line)
        self.out.append(INDENT * indent + head + " {" + trail)
        self.last_line = s.span.line
        self.body(body, indent + 1, parent_end=s.span.end_line)
        self._emit_comments(s.span.end_line, indent + 1, block_start=not body)
        self._line("}", indent, s.span.end_line)

    # -- expressions
    def expr(self, e: S.Expr, indent: int, used: int = 0) -> str:  # noqa: C901 - one case per node
        """Render an expression; ``used`` is how much of the line is already taken."""
        match e:
            case S.Number():
                return e.text
            case S.String():
                return quote(e.value)
            case S.Bool():
                return "true" if e.value else "false"
            case S.NoneLit():
                return "none"
            case S.Name():
                return e.id
            case S.Member():
                return self._wrap(e.obj, 8, indent, used) + "." + e.name
            case S.Call():
                func = self._wrap(e.func, 8, indent, used)
                parts = [self._arg(a, indent + 1) for a in e.args]
                return self._seq(func + "(", ")", parts, list(e.args), e, indent, used)
            case S.ListExpr():
                parts = [self.expr(i, indent + 1) for i in e.items]
                return self._seq("[", "]", parts, list(e.items), e, indent, used)
            case S.TupleExpr():
                parts = [self.expr(i, indent + 1) for i in e.items]
                if len(parts) == 1:
                    return "(" + parts[0] + ",)"
                return self._seq("(", ")", parts, list(e.items), e, indent, used)
            case S.Range():
                return f"{self._wrap(e.lo, 5, indent, used)}..{self._wrap(e.hi, 5, indent, used)}"
            case S.BinOp():
                p = _prec(e)
                left_min = p + 1 if e.op in _CMP else p
                return (f"{self._wrap(e.left, left_min, indent, used)} {e.op} "
                        f"{self._wrap(e.right, p + 1, indent, used)}")
            case S.UnaryOp(op="-"):
                return "-" + self._wrap(e.operand, 7, indent, used)
            case S.UnaryOp():
                return "not " + self._wrap(e.operand, 3, indent, used)
            case S.Directed():
                return f"{e.direction} {self._wrap(e.value, 1, indent, used)}"
        raise AssertionError(type(e).__name__)

    def _wrap(self, e: S.Expr, min_prec: int, indent: int, used: int) -> str:
        text = self.expr(e, indent, used)
        return f"({text})" if _prec(e) < min_prec else text

    def _arg(self, a: S.Arg, indent: int) -> str:
        if a.name is None:
            return self.expr(a.value, indent)
        return f"{a.name} = {self.expr(a.value, indent, len(a.name) + 3)}"

    def _seq(self, open_: str, close: str, parts: list[str], nodes: list[S.Arg | S.Expr],
             e: S.Expr, indent: int, used: int) -> str:
        one = open_ + ", ".join(parts) + close
        inner = self._has_comment_within(e.span) if nodes else False
        if not inner and "\n" not in one and indent * 2 + used + len(one) <= WIDTH:
            return one
        lines = [open_]
        pad = INDENT * (indent + 1)
        for i, (node, text) in enumerate(zip(nodes, parts, strict=True)):
            for c in self._pending(node.span.line):
                if c.line == self.last_line and len(lines) > 1:
                    lines[-1] += "  " + c.text
                else:
                    lines.append(pad + c.text)
            # A comment after several items on one line belongs to the last of them.
            nxt = nodes[i + 1].span.line if i + 1 < len(nodes) else None
            trail = self._trailing(node.span.end_line) if nxt != node.span.end_line else ""
            lines.append(pad + text + "," + trail)
            self.last_line = node.span.end_line
        for c in self._pending(e.span.end_line):
            lines.append(pad + c.text)
        lines.append(INDENT * indent + close)
        return "\n".join(lines)


def print_module(module: S.Module) -> str:
    """Canonical text of a module, comments included."""
    return Printer(module.comments).module(module)
