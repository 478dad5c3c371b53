"""Every unsupported form, one diagnostic each."""
from collections.abc import Callable
from typing import Annotated

from specc.api import Range, component

SIZE = 3


@component("model")
def varargs(*layers: int):
    """*args."""


@component("model")
def kwargs(width: int = 2, **rest: int):
    """**kwargs."""


@component("model")
def no_annotation(width=3):
    """A parameter without a type."""


@component("model")
def computed_default(width: int = SIZE * 2):
    """A default that is not a literal."""


@component("model")
def unsupported(fn: Callable[[int], int]):
    """A type outside the vocabulary."""


@component("model")
def range_on_str(name: Annotated[str, Range(lo=1)] = "a"):
    """Range on a string."""


@component("gadget")
def wrong_kind(width: int = 1):
    """A kind that does not exist."""


@component("model")
def fine(width: int = 1):
    """This one reads back."""
