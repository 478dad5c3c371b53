"""What a component file imports: ``component``, ``Range``, ``BuildContext``, ``Loss`` and the
kind types. Torch-free: ``specc check`` reads a component file's signatures with ``ast`` and never
runs it, so nothing here may need torch (docs/components.md).

Example (a component file)::

    from typing import Annotated, Literal
    from specc.api import BuildContext, Data, Range, component

    @component("model", provides=("classifier",))
    def mlp(width: Annotated[int, Range(lo=1)] = 64, *, ctx: BuildContext) -> "nn.Module":
        \"\"\"A two-layer perceptron.

        Args:
            width: hidden units
        \"\"\"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import attrs

KINDS = ("model", "data", "objective", "metric", "policy", "vocab", "optimizer", "schedule",
         "report", "corruption", "targets", "selector", "circuit", "circuit_metric",
         "intervention", "tracker")


@attrs.frozen
class Range:
    """Bounds of a number: ``Annotated[float, Range(lo=0, lo_open=True)]``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False


@attrs.frozen
class Info:
    """What ``@component`` records on the builder (read back by the run-time drift check)."""

    kind: str
    name: str
    provides: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


def component(kind: str, *, provides: tuple[str, ...] = (), requires: tuple[str, ...] = (),
              members: tuple[str, ...] = (), name: str | None = None) -> Any:
    """Declare a builder as a component of ``kind``; its signature is its catalogue entry.

    - ``provides``: capabilities it offers (``causal_lm``, ``classifier``, ``denoiser``,
      ``vectors``, ``labels``...);
    - ``requires``: capabilities the run's model or data must provide (checked per run);
    - ``members``: the splits of a data component (``train``, ``test``...).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")

    def mark(fn: Any) -> Any:
        fn.__specc__ = Info(kind, name or fn.__name__, tuple(provides), tuple(requires),
                            tuple(members))
        return fn

    return mark


@attrs.define
class BuildContext:
    """Filled by the loop when it calls a builder (never at check time).

    ``data`` is the run's data feed when a model or objective is built (its ``schema`` gives
    input shapes); ``vocab`` the vocabulary when the model has one.
    """

    seed: int = 0
    device: Any = "cpu"
    base: Path = Path(".")
    run_dir: Path | None = None
    data: Any = None
    vocab: Any = None
    model: Any = None
    store: Path | None = None  # the run store's root (where other experiments' runs are)
    attention: str = "sdpa"  # the attention implementation the precision settings ask for
    context: int = 0  # a language model's context length (token data cut to it)
    config: dict[str, Any] = attrs.field(factory=dict)  # the component's whole resolved config
    rewrites: tuple[str, ...] = ()  # the compiler's rewrites applied to the run (Note [Rewrites])

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch's tensors moved to the run's device (other values unchanged)."""
        return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in batch.items()}


@attrs.frozen
class Example:
    """One prompt/answer example of token data for a language model. ``roles`` are known
    positions of the prompt: ``(role, start, end, alternatives)`` character spans (``core``,
    ``surface``...) with the strings that may replace each span; interventions act on them.
    ``corrupt`` is a corrupted prompt for circuit pairs."""

    prompt: str
    answer: str
    corrupt: str | None = None
    roles: tuple[tuple[str, int, int, tuple[str, ...]], ...] = ()


@attrs.frozen
class Prompts:
    """What a data builder returns for a language model: examples per split (``train``,
    ``test``...). The loop encodes them with the model's vocabulary; the loss and exact match
    are on the answer, and metrics such as ``te`` read the roles."""

    splits: dict[str, list[Example]]


class Loss(NamedTuple):
    """What an objective returns: the summed loss over the batch, its weight (items or tokens;
    the loop divides by the summed weight, so accumulation and data parallelism stay exact) and
    optional logs (values to record)."""

    sum: Any
    weight: Any
    logs: dict[str, Any] | None = None


# Kind types for annotations: a parameter typed ``Model`` takes a model declared in the spec.
class Model:
    """A model (a declared name or a call)."""


class Data:
    """A data component."""


class Split:
    """A split of a data component: ``task.test``."""


class Objective:
    """An objective."""


class Metric:
    """A metric."""


class Policy:
    """A fine-tuning policy."""


class Vocab:
    """A vocabulary."""


class Optimizer:
    """An optimizer."""


class Schedule:
    """A learning-rate schedule."""


class Searched:
    """`searched`: the value of the sweep axis or search parameter of the same name."""


class Experiment:
    """An experiment declared in the spec (``checkpoint(experiment = pretrain)``)."""


class Corruption:
    """How a task corrupts a clean prompt for circuit pairs."""


class Targets:
    """The modules a LoRA policy adapts (``all_linear``, ``attention``, ``mlp``)."""


class Selector:
    """How circuit-aware LoRA picks its critical layers."""


class Circuit:
    """A circuit declaration (a discovery method's call)."""


class Pairs:
    """Clean/corrupted prompt pairs: ``task.circuit``."""


class CircuitMetric:
    """What a circuit's edge scores explain."""


class Intervention:
    """An intervention on a prompt's roles: ``mask_core``, ``mask_noncore(nearest = true)``,
    ``replace_core``."""


class Fraction:
    """A number in 0..1, also written as a percentage (``5%``); a string default is spec
    source: ``test: Fraction = "5%"``."""


class IntRange:
    """An integer range ``lo..hi``; a string default is spec source: ``"0..999"``."""


KIND_TYPES = {"Model": "model", "Data": "data", "Split": "split", "Objective": "objective",
              "Metric": "metric", "Policy": "policy", "Vocab": "vocab", "Optimizer": "optimizer",
              "Schedule": "schedule", "Searched": "searched", "Experiment": "experiment",
              "Corruption": "corruption", "Targets": "targets", "Selector": "selector",
              "Circuit": "circuit", "Pairs": "pairs", "CircuitMetric": "circuit_metric",
              "Intervention": "intervention"}

__all__ = ["KINDS", "KIND_TYPES", "BuildContext", "Circuit", "CircuitMetric", "Corruption", "Data",
           "Example", "Experiment", "Fraction", "Info", "IntRange", "Intervention", "Loss",
           "Metric", "Model", "Objective", "Optimizer", "Pairs", "Policy", "Prompts", "Range",
           "Schedule", "Searched", "Selector", "Split", "Targets", "Vocab", "component"]
