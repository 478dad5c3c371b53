"""`check` catches the mistake, `plan` says what runs: the static promise's mechanisms.

The located diagnostics themselves are golden cases (tests/cases/check/*.exp); these tests guard
what goldens cannot show: hashes, run configurations, data order, counts against generators.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import specc
from specc.components import tasks

ROOT = Path(__file__).resolve().parent.parent


def _runs(src: str) -> list[specc.Run]:
    result = specc.plan(src)
    assert result.ok, result.render()
    return list(result.plan.runs())  # type: ignore[union-attr]


def test_an_int_for_a_float_parameter_hashes_like_the_float() -> None:
    base = ("experiment e {{ model m = gpt2(vocab = bytes)\n policy = lora(alpha = {a})\n"
            " train {{ optimizer = adamw(lr = {lr}, weight_decay = {wd}) }} }}")
    [a] = _runs(base.format(a="8", lr="1", wd="0"))
    [b] = _runs(base.format(a="8.0", lr="1.0", wd="0.0"))
    assert a.hash == b.hash
    assert a.config["policy"]["alpha"] == 8.0 and isinstance(a.config["policy"]["alpha"], float)
    # an int stays an int where the parameter takes one (keep = 20 edges, not 20.0)
    [c] = _runs("experiment e { model m = gpt2(vocab = bytes)\n"
                " data d = arithmetic(corrupt = flip_operator)\n"
                " circuit = eap(data = d.circuit, keep = 20) }")
    assert c.config["circuit"]["keep"] == 20 and isinstance(c.config["circuit"]["keep"], int)


def test_rounding_functions_and_integer_division() -> None:
    src = ("experiment e {{ model m = gpt2(vocab = bytes)\n"
           " train {{ batch = {b}\n steps = 10 }} }}")
    got = {b: _runs(src.format(b=b))[0].config["train"]["batch"]
           for b in ("round(2.5)", "round(10 / 3)", "floor(9.9)", "ceil(9.1)", "32 // 3")}
    assert got == {"round(2.5)": 3, "round(10 / 3)": 3, "floor(9.9)": 9, "ceil(9.1)": 10,
                   "32 // 3": 10}


def test_rounding_applies_per_run_to_swept_values() -> None:
    runs = _runs("experiment e { model m = gpt2(vocab = bytes)\n"
                 " train { batch = round(b * 1.5)\n steps = 10 }\n"
                 " sweep grid { b in [3, 5] } }")
    assert [r.config["train"]["batch"] for r in runs] == [5, 8]


def test_a_when_switched_off_member_keeps_its_default() -> None:
    runs = _runs("experiment e { model m = gpt2(vocab = bytes)\n"
                 " train { optimizer = adamw() }\n"
                 " sweep grid { seed in [0, 1]\n"
                 "   train.optimizer.weight_decay in [0.0, 0.1] when seed == 0 } }")
    assert [r.config["train"]["optimizer"]["weight_decay"] for r in runs] == [0.0, 0.1, 0.01]
    assert len({r.hash for r in runs}) == 3


def test_when_compares_components_and_train_fields() -> None:
    runs = _runs("experiment e { model m = gpt2(vocab = bytes)\n"
                 " train { optimizer = opt }\n"
                 " sweep grid { opt in [adamw(lr = 1e-3), sgd(lr = 1e-2)]\n"
                 "   train.batch in [8, 16] when opt == adamw(lr = 1e-3)\n"
                 "   seed in [1, 2] when train.batch == 8 } }")
    assert [r.name for r in runs] == [
        "e[opt=adamw,train.batch=8,seed=1]", "e[opt=adamw,train.batch=8,seed=2]",
        "e[opt=adamw,train.batch=16]", "e[opt=sgd]"]


@pytest.mark.parametrize("cfg", [
    {"component": "arithmetic", "ops": ["+", "-", "*", "/"], "max": 12},
    {"component": "lcm", "max": 12},
    {"component": "sequence", "kind": "arithmetic", "length": 4, "max": 30},
    {"component": "sequence", "kind": "geometric", "length": 4, "max": 30},
    {"component": "compositional", "inner": ["+", "-"], "outer": ["*", "/", "+"], "max": 7},
    {"component": "linear_fn", "max": 3},
], ids=lambda c: c["component"])
def test_distinct_example_counts_match_the_generators(cfg: dict[str, object]) -> None:
    from specc.components import data as D
    from specc.components.vocab import NumbersVocab

    gen = D.build_data({**cfg, "train": 1, "test": 1}, NumbersVocab(0, 999), 512, ROOT, 0).gen
    rng = random.Random(0)
    seen = {gen(rng)[0] for _ in range(150_000)}
    assert tasks.distinct_examples(cfg) == len(seen)


def test_every_task_default_is_feasible() -> None:
    for name in tasks.CORRUPTIONS:
        assert specc.check(f"experiment e {{ model m = gpt2(vocab = bytes)\n data d = {name}() }}"
                           ) == [], name


def test_the_run_seed_drives_the_data_order_and_zero_keeps_the_old_one() -> None:
    import numpy as np

    from specc.components import data as D
    from specc.components.vocab import build_vocab

    cfg = {"component": "arithmetic", "ops": ["+"], "max": 20, "train": 200, "test": 50,
           "corrupt": None, "seed": 3}
    vocab = build_vocab({"component": "numbers", "values": {"range": [0, 99]}}, None)
    shapes = D.shapes_for({"batch": 16}, D.build_data(cfg, vocab, 16, ROOT, 0))
    order = {s: D.build_data(cfg, vocab, 16, ROOT, s).train_batch(0, 16, shapes)["input_ids"]
             for s in (0, 1)}
    assert not np.array_equal(np.asarray(order[0]), np.asarray(order[1]))
    # run seed 0 keeps the order the data's own seed gave before the run seed took part
    perm = np.random.default_rng([3, 0]).permutation(200)
    assert D.build_data(cfg, vocab, 16, ROOT, 0)._perm(0, 200).tolist() == perm.tolist()


def test_every_run_of_the_spec_library_is_bound_and_distinct() -> None:
    from pathlib import Path

    for path in sorted(Path("specs").glob("*.exp")):
        result = specc.plan(path)
        assert result.ok, result.render()
        for ep in result.plan.experiments:  # type: ignore[union-attr]
            if ep.strategy == "cbs":  # its race makes its runs (the run-path issue)
                continue
            runs = list(ep.runs())
            assert len({r.hash for r in runs}) == len(runs), path
            assert all('"var"' not in str(r.config) and "'var'" not in str(r.config)
                       for r in runs), path


COSTS = """model small = gpt2(layers = 1, heads = 2, width = 32, vocab = bytes)
model big = gpt2(layers = 4, heads = 4, width = 128, vocab = bytes)
experiment a { model = small
  train { steps = 10 } }
experiment b { model m = checkpoint(a)
  train { steps = 10 } }
experiment c { model = m
  train { steps = 10 }
  sweep grid { m in [small, big] } }
"""


def test_every_run_is_costed_from_its_own_model(tmp_path: Path) -> None:
    path = tmp_path / "costs.exp"
    path.write_text(COSTS)
    result = specc.plan(path)
    assert result.ok, result.render()
    a, b, c = result.plan.experiments  # type: ignore[union-attr]
    small = a.run_params()(next(a.runs()))["model"]
    assert small is not None and small > 0
    assert a.cost().flops == pytest.approx(6.0 * small * a.cost().tokens)
    assert b.cost().flops == a.cost().flops  # a checkpoint of a costs like a
    counts = [c.run_params()(r)["model"] for r in c.runs()]
    assert counts[0] == small and counts[1] > 10 * small
    tokens = c.cost().tokens // 2
    assert c.cost().flops == pytest.approx(6.0 * (counts[0] + counts[1]) * tokens)


def test_a_swept_declaration_is_part_of_its_runs_hash(tmp_path: Path) -> None:
    path = tmp_path / "costs.exp"
    path.write_text(COSTS)
    runs = list(specc.plan(path).plan.experiments[2].runs())  # type: ignore[union-attr]
    assert runs[1].config["model"]["component"] == "gpt2" and runs[1].config["model"]["layers"] == 4
    path.write_text(COSTS.replace("layers = 4, heads = 4", "layers = 5, heads = 4"))
    after = [r.hash for r in specc.plan(path).plan.experiments[2].runs()]  # type: ignore[union-attr]
    assert runs[1].hash != after[1]


def test_sweep_budget_refuses_what_it_cannot_cost(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "costs.exp"
    path.write_text(COSTS + 'experiment d { model m = pretrained("EleutherAI/pythia-1.4b")\n'
                            "  train { steps = 10 } }\n")
    out = subprocess.run([sys.executable, "examples/sweep_budget.py", str(path), "--max-flops",
                          "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "OVER BUDGET" in out.stdout and "UNKNOWN COST" in out.stdout


def test_params_of_a_local_pretrained_model_come_from_its_config(tmp_path: Path) -> None:
    import json

    model = tmp_path / "pythia-1.4b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "gpt_neox", "hidden_size": 2048, "num_hidden_layers": 24,
        "num_attention_heads": 16, "intermediate_size": 8192, "vocab_size": 50304,
        "max_position_embeddings": 2048}))
    spec = tmp_path / "p.exp"
    spec.write_text('experiment e { model base = pretrained("pythia-1.4b")\n'
                    "  policy l = lora(rank = 8)\n"
                    "  check params(base) == 1414647808\n"
                    "  check params(l) == 24 * 8 * (2048 + 3 * 2048 + 2048 + 2048 + 2048 + 8192"
                    " + 8192 + 2048)\n"
                    "  train { steps = 1 } }\n")
    result = specc.plan(spec)
    assert result.ok, result.render()
    assert [c.passed for c in result.program.experiments[0].checks] == [True, True]  # type: ignore[union-attr]
    hub = 'experiment e { model base = pretrained("EleutherAI/pythia-1.4b")\n' \
          "  policy l = lora(rank = 8)\n  check params(l) > 0\n  train { steps = 1 } }"
    [d] = specc.check(hub)
    assert d.code == "not-constant" and "shape is not known" in (d.help or "")


def test_a_local_tokenizers_size_is_read(tmp_path: Path) -> None:
    import json

    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text(json.dumps({
        "model": {"vocab": {f"t{i}": i for i in range(1000)}},
        "added_tokens": [{"id": 1000}, {"id": 1001}]}))
    spec = tmp_path / "t.exp"
    spec.write_text('experiment e { model m = gpt2(layers = 1, heads = 1, width = 8, '
                    'context = 4, vocab = tokenizer("tok"))\n'
                    "  check params(m) == 1002 * 8 + 4 * 8 + (8 * 24 + 24 + 8 * 8 + 8 + "
                    "8 * 32 + 32 + 32 * 8 + 8 + 32) + 16\n  train { steps = 1 } }\n")
    result = specc.plan(spec)
    assert result.ok and result.program.experiments[0].checks[0].passed, result.render()  # type: ignore[union-attr]


def test_circuit_lora_costs_its_probe_and_circuits() -> None:
    from specc.compiler.plan import run_steps

    result = specc.plan("specs/circuit_lora.exp", profile="smoke")
    [ep] = result.plan.experiments  # type: ignore[union-attr]
    counts = ep.run_params()
    runs = {r.name.split("=")[1].split(",")[0]: r for r in ep.runs()}
    lora, aware = runs["lora"], runs["circuit_aware"]
    assert counts(aware)["trainable"] is not None
    assert run_steps(lora.config) == run_steps(aware.config)
    from specc.compiler.plan import _RunCosts

    costs = _RunCosts(ep)
    (s_l, t_l, f_l), (s_a, t_a, f_a) = costs.of(lora.config), costs.of(aware.config)
    assert s_a > s_l and t_a > t_l and f_a > f_l  # the probe fine-tune and two circuits


def test_the_text_plan_shows_a_searchs_settings_and_each_runs_parameters(
        capsys: pytest.CaptureFixture[str]) -> None:
    from specc.cli.main import main

    assert main(["plan", "specs/lora_hpo.exp"]) == 0
    out = capsys.readouterr().out
    for word in ("sampler =", "pruner =", "objective =", 'storage = "runs/lora_hpo.journal"'):
        assert word in out, word
    assert main(["plan", "specs/quickstart.exp"]) == 0
    assert "(426,496 params)" in capsys.readouterr().out


def test_a_nested_checkpoint_is_pinned_and_scheduled(tmp_path: Path) -> None:
    from specc.orchestrate import _checkpoints_in

    spec = tmp_path / "n.exp"
    spec.write_text("experiment pre { model m = gpt2(layers = 1, heads = 2, width = 16, "
                    "vocab = numbers(0..199))\n  train { steps = 2 } }\n"
                    "experiment ft { model m = gpt2(layers = 1, heads = 2, width = 16, "
                    "vocab = numbers(0..199))\n"
                    "  data task = arithmetic(corrupt = flip_operator)\n"
                    "  circuit = eap(data = task.circuit)\n"
                    "  metrics = [edge_jaccard(circuit, checkpoint(pre))]\n"
                    "  train { steps = 2 } }\n")
    result = specc.plan(spec)
    assert result.ok, result.render()
    pre, ft = result.plan.experiments  # type: ignore[union-attr]
    [run] = list(ft.runs())
    [nested] = _checkpoints_in(run.config)
    assert nested["runs"] == [r.hash for r in pre.runs()]  # pinned: a new pre, a new ft


def test_explain_shows_what_a_model_or_policy_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from specc.cli.main import main

    assert main(["explain", "specs/circuit_lora.exp", "circuit_aware"]) == 0
    assert "params: trains 393,216 of 1,245,184" in capsys.readouterr().out
    assert main(["explain", "specs/quickstart.exp", "base"]) == 0
    assert "params: 426,496" in capsys.readouterr().out


def test_the_model_itself_can_be_swept() -> None:
    runs = _runs("model small = gpt2(layers = 1, heads = 2, width = 32, vocab = bytes)\n"
                 "model big = gpt2(layers = 4, heads = 4, width = 128, vocab = bytes)\n"
                 "experiment c { train { steps = 10 }\n"
                 "  sweep grid { model in [small, big] } }")
    assert [r.config["model"]["layers"] for r in runs] == [1, 4]
    result = specc.plan("model small = gpt2(layers = 1, heads = 2, width = 32, vocab = bytes)\n"
                        "model big = gpt2(layers = 4, heads = 4, width = 128, vocab = bytes)\n"
                        "experiment c { train { steps = 10 }\n"
                        "  sweep grid { model in [small, big] } }")
    [ep] = result.plan.experiments  # type: ignore[union-attr]
    small, big = (ep.run_params()(r)["model"] for r in ep.runs())
    assert ep.cost().flops == pytest.approx(6.0 * (small + big) * ep.cost().tokens / 2)


def test_a_childs_own_sweep_replaces_its_parents() -> None:
    result = specc.plan("experiment base { model m = gpt2(vocab = bytes)\n"
                        "  sweep grid { seed in [1, 2] } }\n"
                        "experiment child extends base { sweep grid { seed in [3, 4, 5] } }")
    assert result.ok, result.render()
    _base, child = result.plan.experiments  # type: ignore[union-attr]
    assert [r.name for r in child.runs()] == ["child[seed=3]", "child[seed=4]", "child[seed=5]"]
    [d] = specc.check("experiment e { model m = gpt2(vocab = bytes)\n"
                      "  sweep grid { seed in [1] }\n  sweep grid { seed in [2] } }")
    assert d.code == "sweep-conflict" and "merge the axes" in (d.help or "")


def test_components_kind_must_exist(capsys: pytest.CaptureFixture[str]) -> None:
    from specc.cli.main import main

    assert main(["components", "--kind", "polcy"]) == 2
    assert 'did you mean "policy"?' in capsys.readouterr().err


def test_backend_auto_is_checked_against_every_backend_it_may_pick() -> None:
    """The verdict of `check` never depends on whether the checking machine has a GPU."""
    from specc.backend import AUTO_CHOICES

    assert {c.name for c in AUTO_CHOICES} == {"cpu", "cuda"}
    [d] = specc.check("experiment e { model m = gpt2(vocab = bytes)\n"
                      "  train { precision = fp16 } }")
    assert d.code == "backend-unsupported" and "cpu" in d.message
    assert specc.check("experiment e { model m = gpt2(vocab = bytes)\n  backend = cuda\n"
                       "  train { precision = fp16 } }") == []


def test_a_missing_extra_is_an_install_hint_not_a_bug(tmp_path: Path) -> None:
    """With only the core installed (torch absent), `specc run` says what to install and exits
    1, instead of exit 70 "a bug in specc"."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from specc.cli.main import main\n"
            f"sys.exit(main(['run', 'specs/quickstart.exp', '--root', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "needs torch" in done.stderr and "pip install '" in done.stderr
    assert "[torch]'" in done.stderr and "internal error" not in done.stderr
