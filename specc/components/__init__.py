"""specc's own components: ``specc.api`` builders, one module per family, read by ``check``
from their source (``specc.catalogue.pyread.BUILTIN_MODULES``) and called at run time.

``builtin`` and ``call`` are how specc reaches its own builders (the run-time side of a user's or
a plug-in's component is ``specc.runtime.plugins``, which shares ``call``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import attrs

from specc.api import BuildContext

# Keys of a component's configuration that are not its builder's arguments.
NOT_ARGS = ("component", "name", "python")


def builtin(name: str) -> Callable[..., Any] | None:
    """specc's own builder of the component ``name`` (None when specc has none)."""
    from specc.catalogue.pyread import builtin_components

    origin = next((c.origin for c in builtin_components() if c.name == name), None)
    if origin is None:
        return None
    fn = getattr(importlib.import_module(origin.module), origin.function, None)
    return fn if hasattr(fn, "__specc__") else None


def call(fn: Callable[..., Any], cfg: dict[str, Any], ctx: BuildContext) -> Any:
    """Call a builder with a resolved configuration's arguments and ``ctx`` (when it takes one,
    carrying the whole configuration as ``ctx.config``).

    Keys the compiler adds beside the arguments (a checkpoint's pinned runs) reach a builder
    only through ``ctx.config``; the run-time drift check keeps a user builder's parameters
    equal to what ``check`` read, so only such keys are left out of the call.
    """
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in cfg.items() if k not in NOT_ARGS and k in params}
    if "ctx" in params:
        kwargs["ctx"] = attrs.evolve(ctx, config=cfg)
    return fn(**kwargs)


def split_name(split: Any) -> str:
    """The split a metric's ``split`` argument names: ``task.test`` arrives as ``{"member":
    "test", ...}``; none means the held-out split, ``test``."""
    if isinstance(split, dict):
        return str(split.get("member") or "test")
    return str(split or "test")


def build(cfg: dict[str, Any] | str, ctx: BuildContext | None = None) -> Any:
    """Build one of specc's own components from its resolved configuration (or bare name)."""
    cfg = {"component": cfg} if isinstance(cfg, str) else cfg
    fn = builtin(str(cfg.get("component")))
    if fn is None:
        msg = f"{cfg.get('component')} is not one of specc's components"
        raise KeyError(msg)
    return call(fn, cfg, ctx or BuildContext())
