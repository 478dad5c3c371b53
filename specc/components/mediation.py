"""Causal mediation of a language model's answers (S8, Han et al., arXiv 2411.19456):
interventions on a prompt's known roles, and the paired metrics TE, AICE and ADCE.

Data whose examples carry roles (``specc.api.Example.roles``: ``core`` and ``surface`` character
spans, with the strings that may replace them) provides the ``roles`` capability; every metric
here requires it, so `check` refuses them on data without roles.

Note [Mediation formula]: the paper's exact Eq. 5 (which indicators, which examples) is not
confirmed (../shared/research/seeds_other.md §G.2), so the formula is a named option:

- ``flip``: per example, 1 when the greedy answer to the intervened prompt differs from the
  answer to the original; averaged over every example (the default);
- ``flip_correct``: the same, over the examples the model answers correctly;
- ``prob``: the drop of the probability of the correct answer (teacher-forced),
  p(answer | x) - p(answer | x').

TE uses a core intervention, AICE a surface one matched in size (the nearest surface span, as
many characters as the core span); ADCE = TE - AICE per example, so its bootstrap interval is
over paired differences. Each example's interventions draw from one seeded generator, so the
core span that ``mask_core`` masks is the one ``mask_noncore`` matches.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Annotated, Any, Literal

from specc.api import BuildContext, Example, Fraction, Intervention, Range, Split, component

Intervene = Callable[[Example, random.Random], "str | None"]
SEED = 8191  # the interventions' draws: example i uses Random(SEED + i)


def _spans(e: Example, role: str) -> list[tuple[int, int, tuple[str, ...]]]:
    return [(a, b, alt) for r, a, b, alt in e.roles if r == role]


def _masked(prompt: str, start: int, end: int, mask: str) -> str:
    return prompt[:start] + mask * (end - start) + prompt[end:]


# ---------------------------------------------------------------------------- interventions
@component("intervention", requires=("roles",))
def mask_core(*, mask: str = "_", ctx: BuildContext) -> Any:
    """Mask one core span (every character replaced by the mask character).

    Args:
        mask: the mask character
    """

    def intervene(e: Example, rng: random.Random) -> str | None:
        cores = _spans(e, "core")
        if not cores:
            return None
        a, b, _ = rng.choice(cores)
        return _masked(e.prompt, a, b, mask)

    return intervene


@component("intervention", requires=("roles",))
def mask_noncore(*, nearest: bool = True, mask: str = "_", ctx: BuildContext) -> Any:
    """Mask a surface span by as many characters as the core span ``mask_core`` masks.

    Args:
        nearest: the surface span nearest to that core span (else one drawn at random)
        mask: the mask character
    """

    def intervene(e: Example, rng: random.Random) -> str | None:
        cores, surfaces = _spans(e, "core"), _spans(e, "surface")
        if not cores or not surfaces:
            return None
        a, b, _ = rng.choice(cores)
        if nearest:
            s, t, _ = min(surfaces, key=lambda sp: (max(sp[0] - b, a - sp[1], 0), sp[0]))
        else:
            s, t, _ = rng.choice(surfaces)
        return _masked(e.prompt, s, min(t, s + (b - a)), mask)

    return intervene


@component("intervention", requires=("roles",))
def replace_core(*, ctx: BuildContext) -> Any:
    """Replace one core span by another value it may take (the example's alternatives)."""

    def intervene(e: Example, rng: random.Random) -> str | None:
        cores = _spans(e, "core")
        if not cores:
            return None
        a, b, alternatives = rng.choice(cores)
        options = [x for x in alternatives if x != e.prompt[a:b]]
        if not options:
            return None
        return e.prompt[:a] + rng.choice(options) + e.prompt[b:]

    return intervene


# ------------------------------------------------------------------------------- the metrics

@component("metric", requires=("causal_lm", "roles"))
def te(
    *,
    split: Split,
    core: Intervention = "mask_core",
    formula: Literal["flip", "flip_correct", "prob"] = "flip",
    limit: Annotated[int | None, Range(lo=1)] = None,
    ci: Annotated[Fraction, Range(lo=0, hi=1, lo_open=True, hi_open=True)] = "95%",
    resamples: Annotated[int, Range(lo=100)] = 1000,
    ctx: BuildContext,
) -> Any:
    """Total effect: how often a core intervention changes the greedy answer; `te.lo`,
    `te.hi` bound it (bootstrap).

    Args:
        split: the split evaluated (task.test)
        core: the core intervention
        formula: flip, flip_correct or prob (Note [Mediation formula])
        limit: examples evaluated (none: all)
        ci: the confidence of the interval
        resamples: bootstrap resamples
    """
    return _paired(split, [(1.0, core)], formula, limit, ci, resamples)


@component("metric", requires=("causal_lm", "roles"))
def aice(
    *,
    split: Split,
    surface: Intervention = "mask_noncore(nearest = true)",
    formula: Literal["flip", "flip_correct", "prob"] = "flip",
    limit: Annotated[int | None, Range(lo=1)] = None,
    ci: Annotated[Fraction, Range(lo=0, hi=1, lo_open=True, hi_open=True)] = "95%",
    resamples: Annotated[int, Range(lo=100)] = 1000,
    ctx: BuildContext,
) -> Any:
    """Approximated indirect (surface) effect: how often a surface intervention of the same
    size changes the greedy answer; `aice.lo`, `aice.hi` bound it.

    Args:
        split: the split evaluated (task.test)
        surface: the surface intervention
        formula: flip, flip_correct or prob (Note [Mediation formula])
        limit: examples evaluated (none: all)
        ci: the confidence of the interval
        resamples: bootstrap resamples
    """
    return _paired(split, [(1.0, surface)], formula, limit, ci, resamples)


@component("metric", requires=("causal_lm", "roles"))
def adce(
    *,
    split: Split,
    core: Intervention = "mask_core",
    surface: Intervention = "mask_noncore(nearest = true)",
    formula: Literal["flip", "flip_correct", "prob"] = "flip",
    limit: Annotated[int | None, Range(lo=1)] = None,
    ci: Annotated[Fraction, Range(lo=0, hi=1, lo_open=True, hi_open=True)] = "95%",
    resamples: Annotated[int, Range(lo=100)] = 1000,
    ctx: BuildContext,
) -> Any:
    """Approximated direct causal effect, TE - AICE per example (the model's reliance on the
    deep structure); `adce.lo`, `adce.hi` bound it (bootstrap of the paired differences).

    Args:
        split: the split evaluated (task.test)
        core: the core intervention (TE)
        surface: the surface intervention (AICE)
        formula: flip, flip_correct or prob (Note [Mediation formula])
        limit: examples evaluated (none: all)
        ci: the confidence of the interval
        resamples: bootstrap resamples
    """
    return _paired(split, [(1.0, core), (-1.0, surface)], formula, limit, ci, resamples)


def _paired(split: Any, terms: list[tuple[float, Any]], formula: str, limit: int | None,
            ci: float, resamples: int) -> Callable[[Any, Any], dict[str, float]]:
    """The metric: per example, the signed sum of each intervention's effect; its mean and a
    percentile bootstrap interval."""
    from specc.components import build, split_name

    name = split_name(split)
    interventions = [(sign, build(cfg)) for sign, cfg in terms]

    def measure(model: Any, data: Any) -> dict[str, float]:
        examples = list(data.splits[name])[:limit]
        per = effects(model, data.vocab, examples, interventions, formula)
        return summary(per, ci, resamples)

    return measure


def effects(model: Any, vocab: Any, examples: list[Example],
            interventions: list[tuple[float, Intervene]], formula: str) -> list[float]:
    """Per example, the signed sum of the interventions' effects (examples an intervention
    does not apply to are left out)."""
    variants: list[list[str | None]] = []
    for sign_fn in interventions:
        fn = sign_fn[1]
        variants.append([fn(e, random.Random(SEED + i)) for i, e in enumerate(examples)])
    keep = [i for i in range(len(examples)) if all(v[i] is not None for v in variants)]
    prompts = [examples[i].prompt for i in keep]
    answers = [examples[i].answer for i in keep]
    if formula == "prob":
        base = answer_probability(model, vocab, prompts, answers)
        per = [0.0] * len(keep)
        for (sign, _), v in zip(interventions, variants, strict=True):
            p = answer_probability(model, vocab, [v[i] for i in keep], answers)  # type: ignore[misc]
            per = [x + sign * (b - q) for x, b, q in zip(per, base, p, strict=True)]
        return per
    original = greedy(model, vocab, prompts, answers)
    per = [0.0] * len(keep)
    for (sign, _), v in zip(interventions, variants, strict=True):
        changed = greedy(model, vocab, [v[i] for i in keep], answers)  # type: ignore[misc]
        per = [x + sign * float(c != o) for x, c, o in zip(per, changed, original, strict=True)]
    if formula == "flip_correct":
        per = [x for x, o, a in zip(per, original, answers, strict=True) if o == a]
    return per


def summary(values: list[float], ci: float, resamples: int) -> dict[str, float]:
    """The mean (the metric's own value, key "") and a percentile bootstrap interval."""
    import numpy as np

    if not values:
        return {"": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0.0}
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if np.ptp(x) == 0:
        lo = hi = mean
    else:
        from scipy.stats import bootstrap

        res = bootstrap((x,), np.mean, confidence_level=ci, n_resamples=resamples,
                        method="percentile", rng=np.random.default_rng(SEED))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"": mean, "lo": lo, "hi": hi, "n": float(len(x))}


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def greedy(model: Any, vocab: Any, prompts: list[str], answers: list[str]) -> list[str]:
    """Greedy answers (up to the longest answer's tokens and the end token), batched by prompt
    length (no padding)."""
    import torch

    longest = max((len(vocab.encode(" " + a)) for a in answers), default=0) + 1
    seqs = [[vocab.bos, *vocab.encode(p)] for p in prompts]
    out = [""] * len(seqs)
    device = _device(model)
    for idx in _by_length(seqs):
        ids = torch.tensor([seqs[i] for i in idx], device=device)
        new = []
        for _ in range(longest):
            nxt = model(input_ids=ids).logits[:, -1].argmax(-1)
            new.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
        for row, i in enumerate(idx):
            toks = [int(t[row]) for t in new]
            if vocab.eos in toks:
                toks = toks[: toks.index(vocab.eos)]
            out[i] = vocab.decode(toks).strip()
    return out


def answer_probability(model: Any, vocab: Any, prompts: list[str],
                       answers: list[str]) -> list[float]:
    """p(answer and end token | prompt), teacher-forced."""
    import torch

    seqs = [([vocab.bos, *vocab.encode(p)], [*vocab.encode(" " + a), vocab.eos])
            for p, a in zip(prompts, answers, strict=True)]
    out = [0.0] * len(seqs)
    device = _device(model)
    for idx in _by_length([p + a for p, a in seqs]):
        ids = torch.tensor([seqs[i][0] + seqs[i][1] for i in idx], device=device)
        logp = model(input_ids=ids).logits.float().log_softmax(-1)
        for row, i in enumerate(idx):
            n_prompt, answer = len(seqs[i][0]), seqs[i][1]
            pos = torch.arange(n_prompt - 1, n_prompt - 1 + len(answer), device=device)
            total = logp[row, pos, torch.tensor(answer, device=device)].sum()
            out[i] = float(total.exp())
    return out


def _by_length(seqs: list[list[int]], chunk: int = 64) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        groups.setdefault(len(s), []).append(i)
    return [idx[k: k + chunk] for idx in groups.values() for k in range(0, len(idx), chunk)]
