"""Every diagnostic code specc reports, with its message template, grouped by phase."""

from __future__ import annotations

from typing import Final

# Each code maps to a message template formatted with the keyword arguments a pass gives.
MESSAGES: Final[dict[str, str]] = {
    # syntax
    "syntax-error": "{what}",
    "syntax-unexpected-token": "unexpected {found}; expected {expected}",
    "syntax-unexpected-char": "unexpected character {char!r}",
    "syntax-unexpected-eof": "the file ends too early; expected {expected}",
    "syntax-bad-number": "malformed number {text!r}",
    # modules
    "import-not-found": 'cannot find imported file "{path}"',
    "import-cycle": "import cycle: {cycle}",
    "io-error": "cannot read {path}: {reason}",
    "import-refused": 'cannot import "{path}": {reason}',
    "not-a-file": "{path} is not a regular file",
    "source-too-large": "{path} is {size:,} bytes; a spec may be at most {limit:,}",
    "source-not-utf8": "this file is not UTF-8 text: byte {byte} does not decode",
    "nesting-too-deep": "expressions are nested more than {limit} deep",
    "number-too-large": "{what} is too {how} (the limit is {limit})",
    # components written in Python (import python, the specc.components entry point)
    "component-signature": "{message}",
    "component-collision": '"{name}" is defined by {providers}',
    "component-drift": "{message}",
    "capability-mismatch": "{message}",
    "python-refused": "{message}",
    # names
    "unknown-name": 'unknown {kind} "{name}"',
    "duplicate-name": '"{name}" is already defined',
    "unknown-parameter": '{component}() has no parameter "{name}"',
    "unknown-member": '{what} has no member "{name}"',
    "unknown-field": '"{name}" is not a field of {block}',
    "unknown-block": 'unknown block "{name}"',
    "unknown-profile": 'unknown profile "{name}"',
    "let-cycle": 'let "{name}" is defined in terms of itself',
    "checkpoint-cycle": "experiments start from each other's checkpoints in a cycle: {cycle}",
    "extends-cycle": "experiments extend each other in a cycle: {cycle}",
    # types and values
    "type-mismatch": "{what} expects {expected}, got {got}",
    "missing-argument": '{component}() needs "{name}"',
    "duplicate-argument": '"{name}" is given twice',
    "too-many-arguments": "{component}() takes at most {max} positional arguments",
    "out-of-range": "{what} must be {bound}, got {got}",
    "division-by-zero": "division by zero",
    "bad-range": "range {lo}..{hi} is empty: the end must not be below the start",
    "not-constant": "{what} must be known at compile time",
    "check-failed": "check failed: {detail}",
    "conflicting-fields": "{message}",
    "missing-field": "{message}",
    "invalid-value": "{message}",
    # sweeps
    "sweep-empty": "sweep axis {name} has no values",
    "sweep-duplicate-axis": 'sweep axis "{name}" is given twice',
    "sweep-conflict": "{message}",
    "sweep-unused": '"{name}" is swept, but nothing uses it: every run would be the same',
    "search-unbound": '"{name} = searched" but no sweep or search defines "{name}"',
    # backends
    "backend-unknown": 'unknown backend "{name}"',
    "backend-unsupported": "the {backend} backend cannot {what}",
}

HELP: Final[dict[str, str]] = {
    "import-cycle": "break the cycle by moving the shared declarations into a file both import",
    "division-by-zero": "check the divisor",
    "not-constant": "use a literal, a let constant or a compile-time function such as params()",
}


def render_message(code: str, **kwargs: object) -> str:
    """Format the message template of ``code`` with ``kwargs``.

    Example:
        >>> render_message("sweep-empty", name="lr")
        'sweep axis lr has no values'
    """
    return MESSAGES[code].format(**kwargs)
