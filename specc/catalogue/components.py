"""Torch-free signatures of every component: name, kind, typed parameters, defaults, docs."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Final

import attrs

from specc.catalogue import types as T

REQUIRED: Final = "<required>"


@attrs.frozen
class Param:
    """One parameter. ``default`` is .exp source text (or REQUIRED); ``lo``/``hi`` bound numbers."""

    name: str
    type: T.Type
    default: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: the value must be strictly above ``lo``
    hi_open: bool = False  # True: the value must be strictly below ``hi``


@attrs.frozen
class Origin:
    """Where a component is defined: ``specc`` (the built-ins), a component file imported with
    ``import python`` (``path``, its ``sha256``) or an installed package's module (``module``,
    ``dist`` with its version). ``line`` is the builder's line in ``path``."""

    provider: str
    path: str = ""
    line: int = 0
    sha256: str = ""
    module: str = ""
    dist: str = ""
    function: str = ""

    def where(self) -> str:
        if not self.path:
            return self.provider
        return f"{self.path}:{self.line}" if self.line else self.path


BUILTIN = Origin("specc")


@attrs.frozen
class Component:
    """A catalogue entry. ``provides`` are the capabilities it offers (a model's ``causal_lm``,
    a data component's ``tokens``); ``requires`` what the run's model or data must provide."""

    name: str
    kind: str
    doc: str
    params: tuple[Param, ...] = attrs.field(converter=tuple, default=())
    variadic: Param | None = None  # e.g. choice(4, 8, 16): any number of positional values
    members: tuple[tuple[str, str], ...] = attrs.field(converter=tuple, default=())
    provides: tuple[str, ...] = attrs.field(converter=tuple, default=())
    requires: tuple[str, ...] = attrs.field(converter=tuple, default=())
    returns: str | None = None  # for compile-time functions: the kind of value they give
    origin: Origin = BUILTIN

    @property
    def qualified(self) -> str:
        return f"{self.origin.provider}.{self.name}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def P(name: str, type_: T.Type, default: str = REQUIRED, doc: str = "", **kw: object) -> Param:
    return Param(name, type_, default, doc, **kw)  # type: ignore[arg-type]


_INT, _FLOAT, _STR, _BOOL = T.INT, T.FLOAT, T.STR, T.BOOL
_SAMPLER = (P("seed", _INT, "0", "random seed", lo=0),)
_PRUNE_WARMUP = P("warmup_steps", _INT, "0", "steps before a trial can be pruned", lo=0)

# Note [Language forms]: the search's samplers, pruners, retry policy and distributions, and the
# compile-time functions, are forms of the language (read by the compiler and the sweep engine,
# never built by a run), listed here with their signatures. Every component a run builds (models,
# data, vocabularies, policies, objectives, optimizers, schedules, metrics, circuits, reports) is
# a `specc.api` builder in specc/components/, read from its signature by
# `specc.catalogue.pyread` and joined with the plug-ins' through a Registry.
LANGUAGE_FORMS: Final[tuple[Component, ...]] = (
    # search ------------------------------------------------------------------------------------
    Component("tpe", "sampler", "Optuna TPE sampler", _SAMPLER),
    Component("random", "sampler", "random sampling", _SAMPLER),
    Component("cmaes", "sampler", "CMA-ES", _SAMPLER),
    Component("gp", "sampler", "Gaussian-process Bayesian optimisation", _SAMPLER),
    Component("grid", "sampler", "exhaustive grid over choice() axes", _SAMPLER),
    Component("median", "pruner", "prune below the median of earlier trials at the same step",
              (_PRUNE_WARMUP, P("startup_trials", _INT, "5", "trials before pruning", lo=0))),
    Component("percentile", "pruner", "prune below a percentile",
              (P("percentile", _FLOAT, "25.0", "percentile", lo=0, hi=100), _PRUNE_WARMUP)),
    Component("successive_halving", "pruner", "asynchronous successive halving",
              (P("min_resource", _INT, "1", "smallest budget", lo=1),
               P("reduction_factor", _INT, "4", "reduction factor", lo=2))),
    Component("hyperband", "pruner", "Hyperband",
              (P("min_resource", _INT, "1", "smallest budget", lo=1),
               P("max_resource", T.optional(_INT), "none", "largest budget", lo=1),
               P("reduction_factor", _INT, "3", "reduction factor", lo=2))),
    Component("no_pruning", "pruner", "never prune"),
    Component("retries", "retry", "retry policy for failed trials",
              (P("max", _INT, "2", "retries per trial", lo=0),
               P("on", T.ListOf(T.Enum(("exception", "nan", "oom", "killed"))),
                 '["killed", "oom"]', "failure classes that are retried"))),
    Component("loguniform", "distribution", "log-uniform float in [lo, hi]",
              (P("lo", _FLOAT, REQUIRED, "low end", lo=0, lo_open=True),
               P("hi", _FLOAT, REQUIRED, "high end", lo=0, lo_open=True))),
    Component("uniform", "distribution", "uniform float in [lo, hi]",
              (P("lo", _FLOAT, REQUIRED, "low end"), P("hi", _FLOAT, REQUIRED, "high end"))),
    Component("int", "distribution", "integer in [lo, hi]",
              (P("lo", _INT, REQUIRED, "low end"), P("hi", _INT, REQUIRED, "high end"),
               P("step", _INT, "1", "step", lo=1), P("log", _BOOL, "false", "log scale"))),
    Component("choice", "distribution", "one of the given values",
              variadic=P("values", T.ANY, REQUIRED, "the choices")),
    # compile-time functions --------------------------------------------------------------------
    Component("params", "function", "parameter count of a model, or trainable count of a policy "
              "on the experiment's model", (P("of", T.Union_((T.Kind("model"), T.Kind("policy"))),
                                              REQUIRED, "model or policy"),), returns="int"),
    Component("chinchilla", "function", "compute-optimal tokens: 20 x non-embedding params",
              (P("model", T.Kind("model"), REQUIRED, "the model"),), returns="int"),
    Component("flops", "function", "training FLOPs: 6 x params x tokens",
              (P("model", T.Kind("model"), REQUIRED, "the model"),
               P("tokens", _INT, REQUIRED, "training tokens", lo=0)), returns="int"),
    Component("round", "function", "the nearest integer (halves away from zero)",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("floor", "function", "the largest integer not above x",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("ceil", "function", "the smallest integer not below x",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("loss_at", "function", "held-out loss of a sweep's reference run at a token count "
              "(known at run time)", (P("batch", _INT, REQUIRED, "the reference batch", lo=1),
                                      P("tokens", _INT, REQUIRED, "tokens seen", lo=1)),
              returns="float"),
)

BACKENDS: Final = ("cpu", "cuda", "xla", "auto")

# Note [Default objective]: an experiment without `objective = ...` trains with the objective its
# model's capabilities imply; `next_token` for causal LMs reproduces the language-model loop.
DEFAULT_OBJECTIVES: Final = (("causal_lm", "next_token"), ("classifier", "cross_entropy"),
                             ("regressor", "mse"))


def default_objective(provides: tuple[str, ...]) -> str | None:
    return next((obj for cap, obj in DEFAULT_OBJECTIVES if cap in provides), None)


@attrs.frozen
class Registry:
    """The components a compilation sees: the built-ins and every plug-in, by name. A name that
    two providers define is ambiguous (``lookup`` gives None; ``collisions`` names both) and is
    reached by its qualified form, ``provider.name``."""

    components: tuple[Component, ...] = attrs.field(converter=tuple)
    by_name: dict[str, list[Component]] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        by: dict[str, list[Component]] = {}
        for c in self.components:
            by.setdefault(c.name, []).append(c)
            by.setdefault(c.qualified, []).append(c)
        object.__setattr__(self, "by_name", by)

    def lookup(self, name: str, kind: str | None = None) -> Component | None:
        found = self.by_name.get(name) or []
        if kind is not None and len(found) > 1:
            found = [c for c in found if c.kind == kind]
        return found[0] if len(found) == 1 else None

    def providers(self, name: str) -> list[Component]:
        return list(self.by_name.get(name, ()))

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self.components if c.kind == kind]


_BUILTIN_REGISTRY: list[Registry] = []
_ACTIVE: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("specc_registry",
                                                                          default=None)


def builtin_registry() -> Registry:
    """The built-ins: specc's own builders (read from their source, never imported) and the
    language forms above."""
    if not _BUILTIN_REGISTRY:
        from specc.catalogue.pyread import builtin_components

        _BUILTIN_REGISTRY.append(Registry((*builtin_components(), *LANGUAGE_FORMS)))
    return _BUILTIN_REGISTRY[0]


def active() -> Registry:
    return _ACTIVE.get() or builtin_registry()


@contextlib.contextmanager
def using(registry: Registry) -> Iterator[None]:
    """Make ``registry`` what ``lookup`` sees (for one compilation)."""
    token = _ACTIVE.set(registry)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def lookup(name: str, kind: str | None = None) -> Component | None:
    """The entry for ``name`` (or ``provider.name``) in the active registry, of ``kind`` when
    given; None when unknown or ambiguous."""
    return active().lookup(name, kind)


def all_components() -> tuple[Component, ...]:
    return active().components


def of_kind(kind: str) -> list[Component]:
    return active().of_kind(kind)
