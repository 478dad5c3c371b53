"""The .exp language: grammar, parser to a span-carrying AST, and the canonical printer."""
