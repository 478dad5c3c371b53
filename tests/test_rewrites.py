"""The compiler's rewrites (Note [Rewrites]) keep the mathematics: 20 steps with and without
them agree within 1e-5 (fp32, CPU); the chunked cross-entropy's gradient equals the plain one's;
the padded vocabulary never reaches a logit, a generated token or a saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import specc
from specc.cli.main import main
from specc.store.runs import MetricsLog

SPEC = """experiment e {{
  model m = {model}
  data t = arithmetic(max = 20, train = 200, test = 40, seed = 1)
  policy = {policy}
  metrics = [loss, exact_match(t.test)]
  train {{
    steps = 20
    batch = 16
    eval_every = 5
    rewrites = {rewrites}
    optimizer = adamw(lr = 3e-3)
  }}
}}
"""
MODELS = {
    "gpt2": "gpt2(layers = 2, heads = 2, width = 32, context = 32, vocab = numbers(0..99))",
    "pythia": "pythia(layers = 2, heads = 2, width = 32, context = 32, vocab = numbers(0..99))",
    "llama": "llama(layers = 2, heads = 2, kv_heads = 1, width = 32, context = 32, "
             "vocab = numbers(0..99))",
}


def _rows(tmp: Path, model: str, policy: str, rewrites: str) -> tuple[list[dict], Path]:
    spec = tmp / f"{rewrites}.exp"
    spec.write_text(SPEC.format(model=model, policy=policy, rewrites=rewrites))
    root = tmp / f"runs-{rewrites}"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    [run] = [p for p in (root / "e").iterdir() if p.is_dir()]
    return MetricsLog(run / "metrics.jsonl").rows(), run


@pytest.mark.parametrize("case", ["gpt2", "pythia", "llama", "gpt2-lora"])
def test_rewrites_keep_the_loss_trajectory(tmp_path: Path, case: str) -> None:
    model = MODELS[case.split("-")[0]]
    policy = "lora(rank = 4)" if case.endswith("lora") else "full"
    plain, _ = _rows(tmp_path, model, policy, "none")
    rewritten, run = _rows(tmp_path, model, policy, "auto")
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert config["train"]["rewrites"] == ["pad_vocab", "chunked_ce", "fit_batch", "compile"]
    assert [r["step"] for r in plain] == [r["step"] for r in rewritten] == [5, 10, 15, 20]
    for a, b in zip(plain, rewritten, strict=True):
        for key in ("train_loss", "loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (case, a["step"], key)
        assert b["exact_match"] == a["exact_match"]
    # the saved model has its real vocabulary (116 = 100 numbers + 16), not the padded 128
    saved = json.loads((run / "final" / "model" / "config.json").read_text())
    assert saved["vocab_size"] == 116


def test_chunked_cross_entropy_equals_the_plain_one() -> None:
    import torch
    import torch.nn.functional as F

    from specc.components.fused import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(24, 8, dtype=torch.float64, requires_grad=True)  # 20 real + 4 padded
    labels = torch.randint(0, 20, (50,))
    labels[::7] = -100
    plain = F.cross_entropy(hidden @ weight[:20].t(), labels, ignore_index=-100,
                            reduction="sum")
    gh, gw = torch.autograd.grad(plain, (hidden, weight))
    mine = linear_cross_entropy(hidden, weight, labels, 20, rows=16)
    mh, mw = torch.autograd.grad(mine * 1.0, (hidden, weight))
    assert float(mine) == pytest.approx(float(plain), rel=1e-6)
    assert torch.allclose(mh, gh, atol=1e-9) and torch.allclose(mw, gw, atol=1e-9)
    assert float(mw[20:].abs().sum()) == 0.0  # padded rows get no gradient


def test_padded_vocabulary_never_reaches_a_token() -> None:
    import torch

    from specc.api import BuildContext
    from specc.components import build
    from specc.components.vocab import NumbersVocab

    vocab = NumbersVocab(0, 99)
    cfg = {"component": "gpt2", "layers": 1, "heads": 2, "width": 16, "context": 16,
           "mlp_ratio": 4, "dropout": 0.0, "vocab": {"component": "numbers"}}
    plain = build(cfg, BuildContext(vocab=vocab, seed=3))
    padded = build(cfg, BuildContext(vocab=vocab, seed=3, rewrites=("pad_vocab",)))
    assert padded.get_input_embeddings().weight.shape[0] == 128
    ids = torch.randint(0, vocab.size, (2, 9))
    with torch.no_grad():
        a, b = plain(input_ids=ids).logits, padded(input_ids=ids).logits
        generated = padded.generate(ids, max_new_tokens=8, do_sample=False,
                                    pad_token_id=vocab.pad)
    assert b.shape[-1] == vocab.size and torch.allclose(a, b, atol=1e-6)
    assert int(generated.max()) < vocab.size
    from specc.components.policies import count_params

    assert count_params(padded) == count_params(plain)


def test_explain_says_which_rewrites_apply_and_why(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert main(["explain", "specs/quickstart.exp", "train.rewrites"]) == 0
    out = capsys.readouterr().out
    assert "pad_vocab: applied" in out and "216 -> 256" in out
    assert "chunked_ce: applied" in out
    assert "fit_batch: applied" in out and "compile: applied" in out and "on CUDA" in out
    spec = tmp_path / "e.exp"
    spec.write_text(SPEC.format(model=MODELS["gpt2"], policy="full", rewrites="auto")
                    .replace("batch = 16", "batch = 16\n    accumulate = 2"))
    assert main(["explain", str(spec), "e.train.rewrites", "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fit_batch: skipped: train.accumulate = 2 is given" in out
    assert "compile: skipped on CPU" in out
    errs = specc.check("experiment e { model m = gpt2(vocab = bytes)\n"
                       "  train { rewrites = [pad_vocab, fused] } }")
    assert [d.code for d in errs] == ["invalid-value"] and "pad_vocab" in errs[0].message, errs


def _fitted(tmp: Path, name: str, extra: str) -> tuple[list[dict], dict]:
    spec = tmp / f"{name}.exp"
    body = SPEC.format(model=MODELS["gpt2"].replace("context = 32", "context = 64"),
                       policy="full", rewrites="auto")
    spec.write_text(body.replace("    rewrites = auto\n", f"    rewrites = auto\n{extra}"))
    root = tmp / f"runs-{name}"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    [run] = [p for p in (root / "e").iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text())
    return MetricsLog(run / "metrics.jsonl").rows(), manifest


def test_fit_batch_keeps_the_declared_batch_update(tmp_path: Path) -> None:
    """accumulate = auto under a small memory budget: the run picks several micro-batches (and,
    tighter still, activation checkpointing) and trains the same losses as one batch."""
    whole, m1 = _fitted(tmp_path, "whole", "    accumulate = 1\n")
    assert "fit_batch" not in m1["at_run"] and m1["at_run"]["compile"] == "eager"
    # the estimate: 0.51 MB fixed, 58 kB a row (31 kB with checkpointing): 1.2 MB usable
    # fits 8 of the 16 rows; 0.555 MB only one row, checkpointed
    split, m2 = _fitted(tmp_path, "split", "    memory = 0.00125\n")
    tight, m3 = _fitted(tmp_path, "tight", "    memory = 0.000575\n")
    assert m2["at_run"]["fit_batch"].startswith("accumulate 2 (micro-batches of 8 rows)")
    assert "checkpointing" not in m2["at_run"]["fit_batch"]
    assert m3["at_run"]["fit_batch"].startswith(
        "accumulate 16 (micro-batches of 1 rows), activation checkpointing"), m3["at_run"]
    est = m2["at_run"]["memory"]
    assert est["estimate_gib"] <= 0.9 * est["budget_gib"]
    for rows in (split, tight):
        assert [r["step"] for r in rows] == [r["step"] for r in whole]
        for a, b in zip(whole, rows, strict=True):
            for key in ("train_loss", "loss"):
                assert b[key] == pytest.approx(a[key], rel=1e-5), (a["step"], key)


def test_fit_batch_chooses_the_fewest_micro_batches_that_fit() -> None:
    from specc.runtime.memory import Estimate, fit

    est = {False: Estimate(fixed=100, per_row=10), True: Estimate(fixed=100, per_row=4)}
    assert fit(16, 1000, est.__getitem__).accumulate == 1
    chosen = fit(16, 200, est.__getitem__)  # usable 180: 8 rows per micro-batch
    assert (chosen.accumulate, chosen.micro_rows, chosen.checkpointing) == (2, 8, False)
    chosen = fit(16, 118, est.__getitem__)  # usable 106: not even one row without checkpoints
    assert chosen.checkpointing and chosen.micro_rows == 1 and chosen.fits
    assert not fit(16, 100, est.__getitem__).fits


@pytest.mark.parametrize("shape", ["gpt2-w128-b8", "llama-w128-b8", "gpt2-w64-l8-b16-ckpt"])
def test_memory_model_matches_the_measured_peak(shape: str) -> None:
    """The memory model against a real step's measured peak (benchmarks/bench_memory.py):
    never below it, and at most 1.5x it."""
    import subprocess
    import sys

    bench = Path(__file__).parents[1] / "benchmarks" / "bench_memory.py"
    sys.path.insert(0, str(bench.parent))
    try:
        from bench_memory import MALLOC_ENV
    finally:
        sys.path.remove(str(bench.parent))
    out = subprocess.run([sys.executable, str(bench), "--child", shape], capture_output=True,
                         text=True, check=True, env=MALLOC_ENV)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert 1.0 <= row["ratio"] <= 1.5, row
