"""The small type language of the catalogue: primitives, component kinds, lists, tuples, unions."""

from __future__ import annotations

from typing import Union

import attrs


@attrs.frozen
class Prim:
    """``int``, ``float`` (accepts ints), ``str``, ``bool``, ``fraction`` (0..1, accepts ``5%``)."""

    name: str

    def __str__(self) -> str:
        return {"fraction": "a fraction (0..1 or a percentage)"}.get(self.name, self.name)


@attrs.frozen
class Kind:
    """A value of a component kind (``policy``, ``model``...) or a reference to one."""

    name: str

    def __str__(self) -> str:
        return article(self.name)


@attrs.frozen
class ListOf:
    item: Type

    def __str__(self) -> str:
        return f"a list of {self.item}"


@attrs.frozen
class TupleOf:
    items: tuple[Type, ...] = attrs.field(converter=tuple)

    def __str__(self) -> str:
        return "a tuple (" + ", ".join(str(i) for i in self.items) + ")"


@attrs.frozen
class Enum:
    """One of a fixed set of bare words or strings."""

    values: tuple[str, ...] = attrs.field(converter=tuple)

    def __str__(self) -> str:
        return "one of " + ", ".join(self.values)


@attrs.frozen
class RangeT:
    def __str__(self) -> str:
        return "a range (lo..hi)"


@attrs.frozen
class Union_:
    options: tuple[Type, ...] = attrs.field(converter=tuple)

    def __str__(self) -> str:
        return " or ".join(str(o) for o in self.options)


@attrs.frozen
class Optional_:
    inner: Type

    def __str__(self) -> str:
        return f"{self.inner} or none"


def article(word: str) -> str:
    """``a policy``, ``an optimizer``."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


Type = Union[Prim, Kind, ListOf, TupleOf, Enum, RangeT, Union_, Optional_]

INT = Prim("int")
FLOAT = Prim("float")
STR = Prim("str")
BOOL = Prim("bool")
FRACTION = Prim("fraction")
ANY = Prim("any")


def optional(t: Type) -> Optional_:
    return Optional_(t)


def kinds_in(t: Type) -> set[str]:
    """Every component kind a type admits (used to resolve bare names)."""
    match t:
        case Kind(name=n):
            return {n}
        case ListOf(item=i):
            return kinds_in(i)
        case TupleOf(items=items) | Union_(options=items):
            return set().union(*(kinds_in(i) for i in items))
        case Optional_(inner=i):
            return kinds_in(i)
    return set()


def enum_words(t: Type) -> set[str]:
    """The bare words a type admits (its enums, inside optionals, lists and unions)."""
    match t:
        case Enum(values=v):
            return set(v)
        case Optional_(inner=i) | ListOf(item=i):
            return enum_words(i)
        case Union_(options=opts):
            return set().union(*(enum_words(o) for o in opts))
    return set()
