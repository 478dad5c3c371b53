"""Torch-free signatures of every component: name, parameters, types, defaults, docs."""

from specc.catalogue.components import (
    BACKENDS,
    LANGUAGE_FORMS,
    Component,
    Origin,
    Param,
    Registry,
    all_components,
    lookup,
)

__all__ = ["BACKENDS", "LANGUAGE_FORMS", "Component", "Origin", "Param", "Registry",
           "all_components", "lookup"]
