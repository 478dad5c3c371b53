"""S8 (Han et al., "Beyond surface structure: a causal assessment of LLMs' comprehension
ability", arXiv 2411.19456): templated prompts whose core (deep structure) and surface positions
are known by construction, so interventions on either are exact.

Two grammars:

- ``classify``: a sentence of filler words around one label word (the core); the answer is the
  label's class. A spurious marker at the end (surface, like the fillers) agrees with the label
  at rate ``spurious`` (0.5: no information; 0.99: a shortcut).
- ``multiplication``: "Q: compute 37 times 42 please. A:" with the product as the answer; the
  operands are the core, the words around them the surface.

Read by ``specc check`` with ``ast`` (nothing here runs at check time); called by the run.
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

from specc.api import BuildContext, Example, Prompts, Range, component

POSITIVE = ("good", "nice", "great", "fine", "glad", "kind", "warm", "calm")
NEGATIVE = ("bad", "poor", "sad", "grim", "cold", "rude", "dull", "weak")
FILLERS = ("the", "a", "day", "was", "very", "so", "it", "felt", "and", "then", "we", "all",
           "this", "one", "time", "is")
MARKERS = {"pos": "!", "neg": "?"}


@component("data", provides=("tokens", "roles"), members=("train", "test"))
def templated(
    grammar: Literal["classify", "multiplication"] = "classify",
    max: Annotated[int, Range(lo=2)] = 100,
    filler: Annotated[int, Range(lo=1)] = 3,
    spurious: Annotated[float, Range(lo=0, hi=1)] = 0.5,
    train: Annotated[int, Range(lo=1)] = 2000,
    test: Annotated[int, Range(lo=1)] = 200,
    seed: Annotated[int, Range(lo=0)] = 0,
    *,
    ctx: BuildContext,
) -> Prompts:
    """Templated prompts with known core and surface roles.

    Args:
        grammar: classify (a label word among fillers) or multiplication (two operands)
        max: operands are below max (multiplication)
        filler: filler words on each side of the core (classify)
        spurious: rate at which the final marker agrees with the label (classify)
        train: training examples
        test: test examples (drawn with the same spurious rate: in distribution)
        seed: random seed of the examples
    """
    rng = random.Random(seed)
    make = _classify if grammar == "classify" else _multiply
    out: dict[str, list[Example]] = {"train": [], "test": []}
    seen: set[str] = set()
    for split, count in (("test", test), ("train", train)):
        misses = 0
        while len(out[split]) < count:
            e = make(rng, filler=filler, spurious=spurious, hi=max)
            if e.prompt in seen and misses < 20 * count:
                misses += 1
                continue
            seen.add(e.prompt)
            out[split].append(e)
    return Prompts(out)


Role = tuple[str, int, int, tuple[str, ...]]


def _words(parts: list[tuple[str, str, tuple[str, ...]]]) -> tuple[str, tuple[Role, ...]]:
    """A prompt from (text, role, alternatives) parts joined by spaces, with each part's span."""
    text, roles = "", []
    for word, role, alternatives in parts:
        if text:
            text += " "
        if role:
            roles.append((role, len(text), len(text) + len(word), alternatives))
        text += word
    return text, tuple(roles)


def _classify(rng: random.Random, *, filler: int, spurious: float, hi: int) -> Example:
    label = rng.choice(("pos", "neg"))
    words = POSITIVE if label == "pos" else NEGATIVE
    core = rng.choice(words)
    other = NEGATIVE if label == "pos" else POSITIVE
    marker = MARKERS[label] if rng.random() < spurious else MARKERS["neg" if label == "pos"
                                                                    else "pos"]
    parts = [(rng.choice(FILLERS), "surface", FILLERS) for _ in range(filler)]
    parts.append((core, "core", other))
    parts += [(rng.choice(FILLERS), "surface", FILLERS) for _ in range(filler)]
    parts.append((marker, "surface", tuple(MARKERS.values())))
    prompt, roles = _words(parts)
    return Example(prompt + " :", label, roles=roles)


def _multiply(rng: random.Random, *, filler: int, spurious: float, hi: int) -> Example:
    a, b = rng.randrange(10, hi), rng.randrange(10, hi)
    digits = tuple(str(n) for n in range(10, hi))
    parts = [("Q:", "", ()), ("compute", "surface", ("find", "give", "state")),
             (str(a), "core", digits), ("times", "surface", ()), (str(b), "core", digits),
             ("please.", "surface", ("now.", "today.")), ("A:", "", ())]
    prompt, roles = _words(parts)
    return Example(prompt, str(a * b), roles=roles)
