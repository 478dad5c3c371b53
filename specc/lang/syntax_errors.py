"""Malformed snippets that teach the parser to name syntax errors in the user's terms."""

from __future__ import annotations

from typing import Final

# Note [Syntax error labels]: lark's match_examples finds the LALR state an error occurred in
# and compares it with the states these snippets fail in; the first match labels the error.
EXAMPLES: Final[dict[str, list[str]]] = {
    "missing '=' between a name and its value": [
        "experiment e { policy full }",
        "experiment e { train { batch 32 } }",
        "let x 3",
    ],
    "missing value after '='": [
        "experiment e { policy = }",
        "experiment e { train { batch = } }",
        "let x = ",
    ],
    "unclosed '(' in a call": [
        "experiment e { m = gpt2(layers = 2 }",
        "experiment e { m = gpt2(layers = 2, heads = 4 }",
    ],
    "unclosed '[' in a list": [
        "experiment e { metrics = [loss, exact_match(t) }",
    ],
    "missing ',' between arguments": [
        "experiment e { m = gpt2(layers = 2 heads = 4) }",
        "experiment e { m = [1 2] }",
    ],
    "an experiment needs a name and a '{'": [
        "experiment { }",
        "experiment e extends { }",
    ],
    "missing '}' at the end of a block": [
        "experiment e { train { batch = 3 }",
        "experiment e { policy = full",
    ],
}
