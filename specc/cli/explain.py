"""``specc explain``: where a value of an experiment came from."""

from __future__ import annotations

import json

from specc.catalogue import components as C
from specc.compiler import ir


def explain(exp: ir.Experiment, path: str) -> str | None:
    """Describe the value at ``path`` (a field, a declaration, or an argument inside them)."""
    parts = path.split(".") if path else []
    for depth in range(len(parts), 0, -1):
        head = ".".join(parts[:depth])
        rest = parts[depth:]
        f = next((f for f in exp.fields if f.path == head), None)
        if f is not None:
            return _describe(exp, head, f.value, str(f.origin), f.span, rest)
        d = exp.decl(head)
        if d is not None:
            return _describe(exp, head, d.value, str(d.origin), d.span, rest)
    return None


def _describe(exp: ir.Experiment, head: str, value: ir.Value, origin: str, span: object,
              rest: list[str]) -> str | None:
    for name in rest:
        if isinstance(value, ir.Ref):
            d = exp.decl(value.name)
            if d is not None:
                value = d.value
        if not isinstance(value, ir.Comp):
            return None
        arg = next((a for a in value.args if a.name == name), None)
        if arg is None:
            return None
        origin = (f"default of {value.name}({name})" if arg.default
                  else f"set at {arg.span}")
        head = f"{head}.{name}"
        value = arg.value
    text = f"{exp.name}.{head} = {json.dumps(ir.plain(value))}\n  from: {origin}"
    if isinstance(value, ir.Ref):
        d = exp.decl(value.name)
        value = d.value if d is not None else value
    if isinstance(value, ir.Comp):
        comp = C.lookup(value.name, value.kind)
        if comp is not None:
            text += f"\n  component: {comp.name} ({comp.kind}), defined by " + (
                "specc" if comp.origin.provider == "specc" else
                f"{comp.origin.provider} at {comp.origin.where()}")
    return text
