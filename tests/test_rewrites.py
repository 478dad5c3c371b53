"""The compiler's rewrites (Note [Rewrites]) keep the mathematics: 20 steps with and without
them agree within 1e-5 (fp32, CPU); the chunked cross-entropy's gradient equals the plain one's;
the padded vocabulary never reaches a logit, a generated token or a saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import specc
from specc.cli.main import main

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
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()], run


@pytest.mark.parametrize("case", ["gpt2", "pythia", "llama", "gpt2-lora"])
def test_rewrites_keep_the_loss_trajectory(tmp_path: Path, case: str) -> None:
    model = MODELS[case.split("-")[0]]
    policy = "lora(rank = 4)" if case.endswith("lora") else "full"
    plain, _ = _rows(tmp_path, model, policy, "none")
    rewritten, run = _rows(tmp_path, model, policy, "auto")
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert config["train"]["rewrites"] == ["pad_vocab", "chunked_ce"]
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


def test_explain_says_which_rewrites_apply_and_why(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["explain", "specs/quickstart.exp", "train.rewrites"]) == 0
    out = capsys.readouterr().out
    assert "pad_vocab: applied" in out and "216 -> 256" in out
    assert "chunked_ce: applied" in out
    errs = specc.check("experiment e { model m = gpt2(vocab = bytes)\n"
                       "  train { rewrites = [pad_vocab, fused] } }")
    assert [d.code for d in errs] == ["invalid-value"] and "pad_vocab" in errs[0].message, errs
