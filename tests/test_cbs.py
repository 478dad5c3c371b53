"""Critical batch size: the fit recovers known values; a tiny CBS sweep runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specc.cli.main import main
from specc.sweeps import cbs_fit

BATCHES = [2, 4, 8, 16, 32, 64, 128, 256]


@pytest.mark.parametrize(("a", "b"), [(300.0, 40_000.0), (50.0, 900.0), (1200.0, 3e6)])
def test_fit_recovers_a_b_and_b_star(a: float, b: float) -> None:
    steps = [a + b / x for x in BATCHES]
    fit = cbs_fit.fit_steps(BATCHES, steps)
    assert fit["a"] == pytest.approx(a, rel=1e-4) and fit["b"] == pytest.approx(b, rel=1e-4)
    b_star = cbs_fit.critical_batch(fit, reference=8, overhead=0.2)
    assert b_star == pytest.approx(1.2 * 8 + 0.2 * b / a, rel=1e-4)
    # B* is where the token overhead against linear scaling from the reference is exactly 20%.
    s = fit["a"] + fit["b"] / b_star
    s_ref = fit["a"] + fit["b"] / 8
    assert s * b_star / (s_ref * 8) == pytest.approx(1.2, rel=1e-6)


def test_free_exponent_fit_and_noise_robustness() -> None:
    import numpy as np

    a, b, alpha = 200.0, 20_000.0, 0.8
    steps = [a + b / x**alpha for x in BATCHES]
    fit = cbs_fit.fit_steps(BATCHES, steps, free_exponent=True)
    assert fit["alpha"] == pytest.approx(alpha, rel=1e-3)
    b_star = cbs_fit.critical_batch(fit, reference=8, overhead=0.2)
    s = a + b / b_star**alpha
    assert s * b_star / ((a + b / 8**alpha) * 8) == pytest.approx(1.2, rel=1e-6)
    rng = np.random.default_rng(0)
    noisy = [v * float(np.exp(rng.normal(0, 0.03))) for v in (a + b / x for x in BATCHES)]
    fit = cbs_fit.fit_steps(BATCHES, noisy)
    true = 1.2 * 8 + 0.2 * b / a
    assert cbs_fit.critical_batch(fit, 8, 0.2) == pytest.approx(true, rel=0.15)


def test_scaling_fit_recovers_exponents() -> None:
    ns = [1e6, 4e6, 1.6e7, 6.4e7]
    fit = cbs_fit.fit_power(ns, [3.0 * n**0.47 for n in ns])
    assert fit["gamma"] == pytest.approx(0.47, abs=1e-9) and fit["c"] == pytest.approx(3.0)


def test_noise_scale_from_two_batch_sizes() -> None:
    g2, trace = 4.0, 120.0
    out = cbs_fit.gradient_noise_scale((8, g2 + trace / 8), (64, g2 + trace / 64))
    assert out["g2"] == pytest.approx(g2) and out["b_simple"] == pytest.approx(trace / g2)


def test_steps_to_target_reads_raw_and_ewa() -> None:
    hist = [{"step": 10, "loss": 3.0, "loss@ewa0.99": 2.9},
            {"step": 20, "loss": 2.6, "loss@ewa0.99": 2.4}]
    assert cbs_fit.steps_to_target(hist, 2.5, ["loss", "loss@ewa0.99"]) == 20
    assert cbs_fit.steps_to_target(hist, 2.5, ["loss"]) is None


SPEC = """experiment cbs_small {
  model lm = gpt2(layers = 1, heads = 2, width = 32, context = 32, vocab = bytes)
  data text = zipf_ngrams(vocab = 64, rules = 256, heldout = 16)
  train {
    optimizer = adam(lr = searched, betas = (0.95, 0.99), weight_decay = 0)
    schedule = constant(warmup = 10)
    ewa = [0.99]
    eval_every = 20
  }
  sweep cbs {
    batch in [4, 8, 16, 32]
    reference = 8
    target = [loss_at(batch = reference, tokens = 20k), loss_at(batch = reference, tokens = 40k)]
    lr in [3e-3, 1e-2] race
    max_tokens = 400k
  }
  report = [cbs_curve, cbs_fit]
}
"""


@pytest.mark.slow
def test_tiny_cbs_sweep_end_to_end(tmp_path: Path) -> None:
    spec = tmp_path / "cbs.exp"
    spec.write_text(SPEC)
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    out = json.loads((root / "cbs_small" / "cbs.json").read_text())
    assert len(out["results"]) == 2
    # `specc plan` lists exactly the race's runs the store holds (Note [One way to make a run])
    import specc

    planned = {r.hash for r in specc.plan(spec).plan.runs()}  # type: ignore[union-attr]
    stored = {d.name for d in (root / "cbs_small").iterdir()
              if d.is_dir() and not d.name.startswith(".")}  # .cbs: the races' claims
    assert stored == planned
    for r in out["results"]:
        steps = {row["batch"]: row["steps"] for row in r["table"]}
        assert all(steps.values()), steps
        assert steps[4] > steps[32], "larger batches need fewer steps"
        assert r["b_star"] > 0 and r["fit"]["a"] > 0
    assert out["tokens_spent"] < out["tokens_full_grid"] / 2
    assert out["gradient_noise_scale"]["b_simple"] > 0
    assert "b_star_vs_tokens" in out
    report = tmp_path / "report"
    assert main(["report", str(spec), "--root", str(root), "--out", str(report)]) == 0
    assert (report / "cbs_small_cbs.png").stat().st_size > 1000


@pytest.mark.slow
def test_two_processes_share_a_cbs_sweep_race_by_race(tmp_path: Path) -> None:
    """Note [Shared CBS]: two `specc run`s on one store split the races (each batch size raced
    by one process, every run trained once) and both write one process's cbs.json."""
    import os
    import subprocess
    import sys

    from specc.store.runs import MetricsLog, read_manifest

    spec = tmp_path / "cbs.exp"
    spec.write_text(SPEC)
    alone, root = tmp_path / "alone", tmp_path / "runs"
    cmd = [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same arithmetic in every process
    subprocess.run([*cmd, str(alone), "--quiet"], env=env, check=True)
    cmd.append(str(root))
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    by_race: dict[int, set[int]] = {}
    for d in (root / "cbs_small").iterdir():
        m = read_manifest(d)
        if m is None:
            continue
        by_race.setdefault(m["config"]["train"]["batch"], set()).add(m["pid"])
        steps = [r["step"] for r in MetricsLog(d / "metrics.jsonl").rows()]
        assert steps == sorted(set(steps)), "a run's rows are logged once"
    assert sorted(by_race) == [4, 8, 16, 32]
    assert all(len(pids) == 1 for pids in by_race.values()), "one process per race"
    assert set().union(*by_race.values()) == {p.pid for p in procs}, "both processes raced"
    assert any("another process is racing it" in o for o, _ in outs)
    want = json.loads((alone / "cbs_small" / "cbs.json").read_text())
    got = json.loads((root / "cbs_small" / "cbs.json").read_text())
    assert got["results"] == want["results"]
    assert got["tokens_spent"] == want["tokens_spent"]
    assert got["gradient_noise_scale"] == want["gradient_noise_scale"]


GRID = """experiment g {
  model m = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+"], max = 20, train = 200, test = 50)
  train { optimizer = adamw(lr = lr); batch = 16; steps = 4; eval_every = 4 }
  metrics = [loss]
  sweep grid {
    lr in [1e-3, 3e-3]
    seed in [0, 1, 2]
  }
}
"""


def test_grid_seeds_are_aggregated_per_configuration(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.exp"
    spec.write_text(GRID)
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    import specc

    planned = {r.hash for r in specc.plan(spec).plan.runs()}  # type: ignore[union-attr]
    assert {d.name for d in (root / "g").iterdir() if d.is_dir()} == planned
    capsys.readouterr()
    assert main(["report", str(spec), "--root", str(root), "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "grid g (final metrics over seeds)" in text and "n=3" in text
    rows = json.loads((tmp_path / "r" / "g_grid.json").read_text())
    assert len(rows) == 2 and all(r["metrics"]["loss"]["n"] == 3 for r in rows)
    lo, hi = rows[0]["metrics"]["loss"]["ci95"]
    assert lo <= rows[0]["metrics"]["loss"]["mean"] <= hi


def test_b_star_scaling_against_model_and_data_size(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Two CBS experiments (model sizes) with two targets each: the report fits B* ∝ N^γ at a
    fixed tokens-per-parameter ratio and B* ∝ D^γ within each experiment."""
    from specc.compiler import params as P

    spec = tmp_path / "s.exp"
    body = """experiment {name} {{
  model lm = gpt2(layers = 2, heads = 2, width = {w}, context = 64, vocab = bytes)
  data text = zipf_ngrams()
  train {{ optimizer = adam(lr = searched) }}
  sweep cbs {{
    batch in [2, 4, 8]
    reference = 8
    target = [loss_at(batch = reference, tokens = chinchilla(lm)),
              loss_at(batch = reference, tokens = 2 * chinchilla(lm))]
    lr in [1e-3] race
    max_tokens = 3 * chinchilla(lm)
  }}
}}
"""
    spec.write_text(body.format(name="small", w=32) + "\n" + body.format(name="big", w=64))
    import specc

    result = specc.compile(spec)
    assert result.ok, result.render()
    root = tmp_path / "runs"
    for exp, b0 in zip(result.program.experiments, (10.0, 20.0), strict=True):  # type: ignore[union-attr]
        decl = exp.decl("lm")
        n = P.non_embedding_params(decl.value)  # type: ignore[union-attr, arg-type]
        results = [{"target": {"kind": "loss_at", "batch": 8, "tokens": k * 20 * n, "value": 1},
                    "table": [], "b_star": b0 * k ** 0.5} for k in (1, 2)]
        (root / exp.name).mkdir(parents=True)
        (root / exp.name / "cbs.json").write_text(json.dumps({
            "results": results, "reference": 8, "overhead": 0.2, "batches": [2, 4, 8],
            "lrs": [1e-3], "max_tokens": 100000, "tokens_spent": 1, "tokens_full_grid": 2}))
    assert main(["report", str(spec), "--root", str(root), "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "B* ∝ N^" in text and "B* ∝ D^0.500" in text
    assert (tmp_path / "r" / "cbs_scaling.png").exists()
