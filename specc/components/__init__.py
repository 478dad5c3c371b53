"""Implementations of the catalogue's components (torch imported lazily, inside functions)."""
