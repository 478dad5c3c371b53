"""Search spaces as Optuna objects: every sampler and pruner, conditional parameters."""

from __future__ import annotations

import pytest

import specc
from specc.compiler import ir
from specc.sweeps import space

SPEC = """experiment s {{
  model m = gpt2(layers = 1, heads = 2, width = width, dropout = dropout, vocab = bytes)
  data d = zipf_ngrams()
  search optuna {{
    lr ~ loguniform(1e-5, 1e-1)
    width ~ int(16, 64, step = 16)
    dropout ~ uniform(0.0, 0.3)
{extra}
    objective = {objective}
    trials = 8
    sampler = {sampler}
    pruner = {pruner}
  }}
  train {{ optimizer = adamw(lr = lr); steps = 5 }}
}}
"""


def search(sampler: str = "tpe(seed = 0)", pruner: str = "median()", extra: str = "",
           objective: str = "minimize loss") -> ir.Search:
    result = specc.compile(SPEC.format(sampler=sampler, pruner=pruner, extra=extra,
                                       objective=objective))
    # The conditional parameters of one test drive only the sampler: nothing uses them.
    assert all(d.code == "sweep-unused" for d in result.diagnostics), result.render()
    s = result.program.experiments[0].search  # type: ignore[union-attr]
    assert s is not None
    return s


@pytest.mark.parametrize("sampler", ["tpe(seed = 0)", "random(seed = 1)", "cmaes(seed = 2)",
                                     "gp(seed = 3)"])
def test_every_sampler_drives_ask_and_tell(sampler: str) -> None:
    import optuna

    s = search(sampler)
    study = optuna.create_study(sampler=space.build_sampler(s), direction="minimize")
    for _ in range(6):
        trial = study.ask()
        values = space.sample(trial, s)
        lr = values["lr"].value  # type: ignore[union-attr]
        assert 1e-5 <= lr <= 1e-1 and values["width"].value in (16, 32, 48, 64)  # type: ignore[union-attr]
        study.tell(trial, (lr - 1e-3) ** 2)
    assert len(study.trials) == 6


def test_grid_sampler_needs_choices_and_enumerates_them() -> None:
    import optuna

    s = search("grid()", extra="")
    with pytest.raises(specc.SpeccError, match="choice"):
        space.build_sampler(s)
    grid = specc.compile(SPEC.format(sampler="grid()", pruner="no_pruning", extra="",
                                     objective="minimize loss")
                         .replace("lr ~ loguniform(1e-5, 1e-1)", "lr ~ choice(1e-3, 1e-2)")
                         .replace("width ~ int(16, 64, step = 16)", "width ~ choice(16, 32)")
                         .replace("dropout ~ uniform(0.0, 0.3)", "dropout ~ choice(0.0)"))
    g = grid.program.experiments[0].search  # type: ignore[union-attr]
    study = optuna.create_study(sampler=space.build_sampler(g))
    seen = set()
    for _ in range(4):
        t = study.ask()
        v = space.sample(t, g)
        seen.add((v["lr"].value, v["width"].value))  # type: ignore[union-attr]
        space.tell(study, t, 0.0)
    assert seen == {(1e-3, 16), (1e-3, 32), (1e-2, 16), (1e-2, 32)}


@pytest.mark.parametrize(("pruner", "kind"), [
    ("median(warmup_steps = 5)", "MedianPruner"), ("percentile(percentile = 10.0)",
                                                   "PercentilePruner"),
    ("successive_halving()", "SuccessiveHalvingPruner"), ("hyperband(max_resource = 100)",
                                                          "HyperbandPruner"),
    ("no_pruning", "NopPruner")])
def test_every_pruner(pruner: str, kind: str) -> None:
    assert type(space.build_pruner(search(pruner=pruner))).__name__ == kind


def test_conditional_parameters_follow_when() -> None:
    import optuna

    s = search(extra='    opt ~ choice("adam", "sgd")\n'
                     '    momentum ~ uniform(0.5, 0.99) when opt == "sgd"')
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        t = study.ask()
        v = space.sample(t, s)
        assert ("momentum" in v) == (v["opt"].value == "sgd")  # type: ignore[union-attr]
        seen.add(v["opt"].value)  # type: ignore[union-attr]
        study.tell(t, 0.0)
    assert seen == {"adam", "sgd"}


def test_multi_objective_directions() -> None:
    s = search(objective="[minimize loss, maximize token_accuracy]")
    assert [d for d, _ in space.objectives(s)] == ["minimize", "maximize"]
