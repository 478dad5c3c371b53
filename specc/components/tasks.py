"""Synthetic tasks of the circuit-analysis paper, as text: clean prompts, answers, corruptions.

Each generator yields distinct examples from a seeded RNG; ``corrupt`` builds the corrupted
prompt of a clean one (None when no corruption of the same shape exists). The tasks and the
corruptions are ``specc.api`` builders (data and corruption kinds); a task's builder returns its
token feed (``specc.components.data.TaskData``) for the run's vocabulary and context.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from specc.api import BuildContext, Corruption, Example, Range, component
from specc.diagnostics import SpeccError

Gen = Callable[[random.Random], tuple[str, str, Callable[[random.Random], str | None]]]


def _digits(n: int) -> int:
    return len(str(abs(n)))


def _arith(ops: list[str], hi: int) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str, Callable[[random.Random], str | None]]:
        op = rng.choice(ops)
        if op == "/":
            b, x = rng.randint(1, hi - 1), rng.randint(0, hi - 1)
            a, c = b * x, x
        else:
            a, b = rng.randint(0, hi - 1), rng.randint(0, hi - 1)
            if op == "-" and a < b:
                a, b = b, a
            c = {"+": a + b, "-": a - b, "*": a * b}[op]

        def flip(r: random.Random) -> str | None:
            other = {"+": "-", "-": "+", "*": "/", "/": "*"}[op]
            return f"{a} {other} {b} ="

        def operand(r: random.Random) -> str | None:
            for _ in range(20):
                a2 = r.randint(0, max(hi - 1, 1)) if op != "/" else b * r.randint(0, hi - 1)
                if a2 != a and _digits(a2) == _digits(a):
                    return f"{a2} {op} {b} ="
            return None

        def shuffle(r: random.Random) -> str | None:
            return f"{b} {op} {a} =" if a != b else None

        corrupt = {"flip_operator": flip, "random_operand": operand, "shuffle_operands": shuffle}
        return f"{a} {op} {b} =", str(c), corrupt  # type: ignore[return-value]

    return gen


def _sequence(kind: str, length: int, hi: int) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str, Any]:
        if kind == "arithmetic":
            start, step = rng.randint(1, hi), rng.randint(1, max(1, hi // 5))
            terms = [start + i * step for i in range(length + 1)]
        else:
            start, ratio = rng.randint(1, 10), rng.randint(2, 10)
            terms = [start * ratio**i for i in range(length + 1)]
        shown = ", ".join(str(t) for t in terms[:-1])

        def bump(r: random.Random) -> str | None:
            t = list(terms[:-1])
            i = r.choice([len(t) - 2, len(t) - 1])
            t[i] += r.randint(1, 100)
            return "seq " + ", ".join(str(x) for x in t) + " ,"

        return f"seq {shown} ,", str(terms[-1]), {"*": bump}

    return gen


def _lcm(hi: int) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str, Any]:
        a, b = rng.randint(2, hi), rng.randint(2, hi)
        value = a * b // math.gcd(a, b)

        def other(r: random.Random) -> str | None:
            for _ in range(20):
                a2, b2 = r.randint(2, hi), r.randint(2, hi)
                if a2 * b2 // math.gcd(a2, b2) != value:
                    return f"lcm ( {a2} , {b2} ) ="
            return None

        return f"lcm ( {a} , {b} ) =", str(value), {"*": other}

    return gen


def _linear(hi: int) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str, Any]:
        a, b = rng.randint(1, hi), rng.randint(1, 500)
        ys = [a * x + b for x in (1, 2, 3, 4)]

        def other(r: random.Random) -> str | None:
            b2 = r.randint(1, 500)
            if b2 == b:
                return None
            y2 = [a * x + b2 for x in (1, 2, 3)]
            return f"y = {a} x + {b2} , " + " , ".join(map(str, y2)) + " ,"

        return f"y = {a} x + {b} , " + " , ".join(map(str, ys[:3])) + " ,", str(ys[3]), {
            "*": other}

    return gen


def _compositional(inner: list[str], outer: list[str], hi: int) -> Gen:
    """(x op1 y) op2 z with operands below ``hi``; a division is exact (the bracket is a
    multiple of z)."""

    def gen(rng: random.Random) -> tuple[str, str, Any]:
        op1, op2 = rng.choice(inner), rng.choice(outer)
        z = rng.randint(1, hi - 1)
        if op2 == "/":  # pick the quotient, then operands whose bracket is quotient * z
            most = 2 * (hi - 1) if op1 == "+" else hi - 1
            left = z * rng.randint(0, most // z)
            if op1 == "+":
                y = rng.randint(max(0, left - (hi - 1)), min(hi - 1, left))
                x = left - y
            else:
                y = rng.randint(0, hi - 1 - left)
                x = left + y
        else:
            x, y = rng.randint(0, hi - 1), rng.randint(0, hi - 1)
            if op1 == "-" and x < y:
                x, y = y, x
        left = x + y if op1 == "+" else x - y
        value = {"+": left + z, "-": left - z, "*": left * z, "/": left // z}[op2]

        def other(r: random.Random) -> str | None:
            for _ in range(20):
                z2 = r.randint(1, hi - 1)
                if z2 != z and _digits(z2) == _digits(z):
                    return f"( {x} {op1} {y} ) {op2} {z2} ="
            return None

        return f"( {x} {op1} {y} ) {op2} {z} =", str(value), {"*": other}

    return gen


# The corruptions each task implements (`check` refuses any other at the data line).
CORRUPTIONS: dict[str, tuple[str, ...]] = {
    "arithmetic": ("flip_operator", "random_operand", "shuffle_operands"),
    "sequence": ("random_operand",),
    "lcm": ("random_operand",),
    "linear_fn": ("random_operand",),
    "compositional": ("random_operand",),
}


def distinct_examples(cfg: dict[str, Any]) -> int:
    """How many distinct prompts a task's generator can make, in closed form (torch-free, so
    `check` reports an infeasible `train + test` at the data line).

    Example:
        >>> distinct_examples({"component": "lcm", "max": 30})
        841
    """
    name, hi = cfg["component"], int(cfg["max"])
    if name == "arithmetic":
        per_op = {"+": hi * hi, "*": hi * hi, "-": hi * (hi + 1) // 2, "/": (hi - 1) * hi}
        return sum(per_op[op] for op in set(cfg["ops"]))
    if name == "sequence":
        return hi * max(1, hi // 5) if cfg.get("kind", "arithmetic") == "arithmetic" else 10 * 9
    if name == "lcm":
        return (hi - 1) ** 2
    if name == "linear_fn":
        return hi * 500
    if name == "compositional":
        total = 0
        for op1 in set(cfg["inner"]):
            for op2 in set(cfg["outer"]):
                if op2 != "/":
                    pairs = hi * hi if op1 == "+" else hi * (hi + 1) // 2
                    total += pairs * (hi - 1)
                    continue
                for z in range(1, hi):
                    if op1 == "+":  # x + y = left, a multiple of z, 0 <= x, y < hi
                        total += sum(min(left, 2 * (hi - 1) - left) + 1
                                     for left in range(0, 2 * (hi - 1) + 1, z))
                    else:  # x - y = left >= 0, a multiple of z
                        total += sum(hi - left for left in range(0, hi, z))
        return total
    msg = f"{name} is not a synthetic task"
    raise KeyError(msg)


def examples(cfg: dict[str, Any], gen: Gen, n: int, seed: int) -> Iterator[Example]:
    """Up to ``n`` distinct examples (fewer when the task has fewer distinct prompts)."""
    from specc.components import build

    rng = random.Random(seed)
    corruption = build(cfg["corrupt"]) if cfg.get("corrupt") else None
    seen: set[str] = set()
    misses = 0
    while len(seen) < n and misses < 50 * n + 1000:
        prompt, answer, corrupters = gen(rng)
        if prompt in seen:
            misses += 1
            continue
        seen.add(prompt)
        corrupt = None
        if corruption is not None:
            fn = corrupters.get(corruption) or corrupters.get("*")
            corrupt = fn(rng) if fn is not None else None
        yield Example(prompt=prompt, answer=answer, corrupt=corrupt)


def splits(cfg: dict[str, Any], gen: Gen) -> dict[str, list[Example]]:
    """Disjoint train and test splits; ``circuit`` is the test split's pairs (as in the paper)."""
    n_train, n_test = int(cfg["train"]), int(cfg["test"])
    every = list(examples(cfg, gen, n_train + n_test, int(cfg.get("seed", 0))))
    if len(every) < n_train + n_test:
        msg = (f"{cfg['component']} has only {len(every)} distinct examples with these settings, "
               f"fewer than train + test = {n_train} + {n_test}; lower train/test or widen the "
               "task (a larger max, more ops)")
        raise SpeccError(msg)
    test = every[:n_test]
    train = every[n_test:]
    return {"train": train, "test": test, "validation": test,
            "circuit": [e for e in test if e.corrupt is not None]}


def _task_data(gen: Gen, ctx: BuildContext) -> Any:
    """A task's feed: its examples encoded with the run's vocabulary, cut to the model's
    context, in the order the run's seed draws."""
    from specc.components.data import TaskData, order_seed

    return TaskData(splits(ctx.config, gen), ctx.vocab, ctx.context,
                    order_seed(int(ctx.config.get("seed", 0)), ctx.seed), gen=gen)


# ------------------------------------------------------------------------------------ builders
@component("data", provides=("tokens",), members=("train", "test", "validation", "circuit:pairs"))
def arithmetic(
    *,
    ops: list[Literal["+", "-", "*", "/"]] = ("+", "-"),
    max: Annotated[int, Range(lo=2)] = 100,
    train: Annotated[int, Range(lo=1)] = 4500,
    test: Annotated[int, Range(lo=1)] = 500,
    corrupt: Corruption | None = None,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Two-operand arithmetic prompts 'a op b =' with the answer.

    Args:
        ops: operators
        max: operands are drawn from 0..max-1
        train: training examples
        test: test examples
        corrupt: how clean prompts are corrupted for circuit pairs
        seed: random seed
    """
    return _task_data(_arith(list(ops), max), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation", "circuit:pairs"))
def sequence(
    *,
    kind: Literal["arithmetic", "geometric"] = "arithmetic",
    length: Annotated[int, Range(lo=2)] = 4,
    max: Annotated[int, Range(lo=2)] = 300,
    train: Annotated[int, Range(lo=1)] = 4500,
    test: Annotated[int, Range(lo=1)] = 500,
    corrupt: Corruption | None = None,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Continue an arithmetic or geometric sequence.

    Args:
        kind: sequence type
        length: terms shown
        max: largest start term
        train: training examples
        test: test examples
        corrupt: corruption
        seed: random seed
    """
    return _task_data(_sequence(kind, length, max), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation", "circuit:pairs"))
def lcm(
    *,
    max: Annotated[int, Range(lo=2)] = 100,
    train: Annotated[int, Range(lo=1)] = 4500,
    test: Annotated[int, Range(lo=1)] = 500,
    corrupt: Corruption | None = None,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Least common multiple of two numbers.

    Args:
        max: operand bound
        train: training examples
        test: test examples
        corrupt: corruption
        seed: random seed
    """
    return _task_data(_lcm(max), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation", "circuit:pairs"))
def linear_fn(
    *,
    max: Annotated[int, Range(lo=2)] = 20,
    train: Annotated[int, Range(lo=1)] = 4500,
    test: Annotated[int, Range(lo=1)] = 500,
    corrupt: Corruption | None = None,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Evaluate y = a*x + b.

    Args:
        max: coefficient bound
        train: training examples
        test: test examples
        corrupt: corruption
        seed: random seed
    """
    return _task_data(_linear(max), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation", "circuit:pairs"))
def compositional(
    *,
    inner: list[Literal["+", "-"]] = ("+", "-"),
    outer: list[Literal["+", "-", "*", "/"]] = ("*",),
    max: Annotated[int, Range(lo=2)] = 20,
    train: Annotated[int, Range(lo=1)] = 4500,
    test: Annotated[int, Range(lo=1)] = 500,
    corrupt: Corruption | None = None,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """Compositional task (x op1 y) op2 z.

    Args:
        inner: inner operators
        outer: outer operators (/ is exact division)
        max: operand bound
        train: training examples
        test: test examples
        corrupt: corruption
        seed: random seed
    """
    return _task_data(_compositional(list(inner), list(outer), max), ctx)


# The corruptions: each task's generator implements the ones it supports (CORRUPTIONS above;
# `check` refuses any other pair at the data line), keyed by the corruption's name.
@component("corruption")
def flip_operator(*, ctx: BuildContext) -> Any:
    """Swap the operator (+ with -, * with /)."""
    return "flip_operator"


@component("corruption")
def random_operand(*, ctx: BuildContext) -> Any:
    """Replace the first operand by another of the same token length."""
    return "random_operand"


@component("corruption")
def shuffle_operands(*, ctx: BuildContext) -> Any:
    """Swap the two operands."""
    return "shuffle_operands"

