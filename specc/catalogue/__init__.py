"""Torch-free signatures of every component: name, parameters, types, defaults, docs."""

from specc.catalogue.components import (
    BACKENDS,
    BY_NAME,
    CATALOGUE,
    KINDS,
    Component,
    Origin,
    Param,
    Registry,
    all_components,
    lookup,
)

__all__ = ["BACKENDS", "BY_NAME", "CATALOGUE", "KINDS", "Component", "Origin", "Param", "Registry",
           "all_components", "lookup"]
