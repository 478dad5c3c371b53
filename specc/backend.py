"""The backend plug-in interface: a capability record plus a runtime factory, by entry point."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from specc.compiler.check_backend import Capabilities
from specc.diagnostics import SpeccError


class Backend(Protocol):
    """What the core needs from a backend: its name, what it can do, and its runtime parts."""

    name: str
    capabilities: Capabilities

    def available(self) -> bool: ...

    def runtime(self, train: dict[str, Any]) -> Any: ...


def load_backend(name: str) -> Backend:
    """The backend registered under ``name`` in the ``specc.backends`` entry-point group."""
    found = [ep for ep in entry_points(group="specc.backends") if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group="specc.backends"))
        msg = f'no backend "{name}" is installed (installed: {", ".join(known) or "none"})'
        raise SpeccError(msg)
    try:
        backend = found[0].load()
    except ImportError as exc:
        msg = f"the {name} backend needs its dependencies: pip install 'specc[torch]' ({exc})"
        raise SpeccError(msg) from exc
    return backend  # type: ignore[no-any-return]


def choose(name: str) -> str:
    """``auto`` is cuda when a GPU is visible, else cpu."""
    if name != "auto":
        return name
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
