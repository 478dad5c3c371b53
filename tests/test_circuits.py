"""Circuits: the probed forward equals the model, EAP-IG agrees with exact patching, parameter
arithmetic reproduces the paper, selection/pruning/collapse/Jaccard invariants, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

import specc
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]
BYTES = {"component": "bytes"}  # the configuration's vocabulary (the model gets its size)
SHAPES = {
    "gpt2": dict(component="gpt2", vocab=BYTES, layers=2, heads=4, width=32, context=16,
                 mlp_ratio=4, dropout=0.0),
    "pythia": dict(component="pythia", vocab=BYTES, layers=2, heads=4, width=32, context=16,
                   mlp_ratio=4, dropout=0.0, rotary_pct=0.25),
    "llama": dict(component="llama", vocab=BYTES, layers=2, heads=4, kv_heads=2, width=32,
                  context=16, mlp_ratio=4, dropout=0.0, rope_theta=10000.0),
}


def _model(kind: str, vocab: int = 50, seed: int = 0) -> object:
    from specc.components.models import build_model

    return build_model(SHAPES[kind], vocab, base=ROOT, store_root=ROOT, attention="eager",
                       seed=seed).eval()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(SHAPES))
def test_probed_forward_equals_the_model(kind: str) -> None:
    import torch

    from specc.circuits.forward import CircuitModel

    model = _model(kind)
    ids = torch.randint(0, 50, (3, 7))
    with torch.no_grad():
        ref = model(input_ids=ids).logits  # type: ignore[operator]
        mine, nodes = CircuitModel(model).forward(ids)
    assert torch.allclose(ref, mine, atol=1e-5)
    assert nodes.shape[0] == 1 + 2 * (4 + 1)


def _trained_task_model(kind: str) -> tuple[object, list[tuple[list[int], list[int], int]]]:
    import torch
    import torch.nn.functional as F

    from specc.components.data import build_data
    from specc.components.vocab import NumbersVocab

    torch.manual_seed(0)
    vocab = NumbersVocab(0, 199)
    data = build_data({"component": "arithmetic", "ops": ["+", "-"], "max": 100, "train": 64,
                       "test": 24, "seed": 0, "corrupt": {"component": "flip_operator"}}, vocab,
                      16, ROOT, 0)
    shape = {**SHAPES[kind], "width": 64}
    from specc.components.models import build_model

    model = build_model(shape, vocab.size, base=ROOT, store_root=ROOT, attention="eager")
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for step in range(80):
        b = data.train_batch(step, 32)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                               b["labels"][:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data.pairs()


@pytest.mark.parametrize("kind", ["gpt2", "pythia"])
def test_eap_ig_agrees_with_exact_patching(kind: str) -> None:
    from scipy.stats import spearmanr

    from specc.circuits.attribute import Attributor

    model, pairs = _trained_task_model(kind)
    att = Attributor(model, pairs, "kl_last_token", batch=32)
    ig, exact = att.eap_ig(5)[att.mask], att.exact()[att.mask]
    top = exact.abs().argsort(descending=True)[:30]
    rho = spearmanr(ig[top].numpy(), exact[top].numpy())[0]
    print(f"{kind}: Spearman over the top 30 edges {rho:.3f}")
    assert rho >= 0.8


def test_eap_ig_completeness_improves_with_steps() -> None:
    """Σ_v s(input→v) approaches metric(corrupted) - metric(clean) as m grows (IG's
    completeness along the input-embedding path)."""
    from specc.circuits.attribute import Attributor

    model, pairs = _trained_task_model("gpt2")
    att = Attributor(model, pairs, "kl_last_token", batch=32)
    # With every edge corrupted the metric is KL(clean ‖ corrupted): the IG sum's target.
    target = att.faithfulness(att.mask & False)["baseline"]
    errors = []
    for m in (1, 4, 32):
        total = float(att.eap_ig(m, "paper")[0].sum())
        errors.append(abs(total - target) / target)
    print("completeness relative errors", errors)
    assert errors[2] < errors[0] and errors[2] < 0.05


def test_paper_parameter_ratios_for_pythia_1_4b() -> None:
    spec = """experiment p {
  model m = pythia(layers = 24, heads = 16, width = 2048, context = 2048,
                   vocab = numbers(0..50287))
  policy lora = lora(rank = 32)
  policy ca = circuit_lora(rank_other = 16, rank_critical = 64, critical = top_layers(5))
  check params(lora) == 25165824
  check params(ca) == 20447232
  check params(m) == 1414647808
}"""
    result = specc.compile(spec)
    assert result.ok, result.render()
    base = 1_414_647_808
    assert round(100 * 25_165_824 / (base + 25_165_824), 4) == 1.7479
    assert round(100 * 20_447_232 / (base + 20_447_232), 4) == 1.4248


def test_selection_pruning_collapse_and_jaccard() -> None:
    import torch

    from specc.circuits.circuit import Circuit, edge_change, edge_jaccard, node_jaccard, union
    from specc.circuits.forward import Graph

    g = Graph.build(2, 2, parallel=False)
    mask = g.upstream()
    torch.manual_seed(1)
    scores = torch.randn(len(g.sources), len(g.dests)) * mask
    c = Circuit.select(g, scores, 0.2)
    assert c.kept.sum() <= int(0.2 * mask.sum())
    assert not (c.kept & ~mask).any(), "only real edges are kept"
    # Pruned: every kept source feeds a kept edge, every kept non-input node has a parent.
    for u, _ in c.edges():
        assert u == "input" or any(d.split("<")[0] == u for _, d in c.edges())
    collapsed = c.collapsed()
    assert abs(sum(collapsed.values()) - sum(c.edges().values())) < 1e-5
    assert all("<" not in v for _, v in collapsed)
    assert node_jaccard(c, c) == edge_jaccard(c, c) == 1.0
    other = Circuit.select(g, torch.randn_like(scores) * mask, 0.2)
    assert 0.0 <= edge_jaccard(c, other) <= node_jaccard(c, other) + 1.0
    change = edge_change(c, c)
    assert float(change.sum()) == 0.0
    u = union([c, other], int(c.kept.sum()))
    assert int(u.kept.sum()) == int(c.kept.sum())
    greedy = Circuit.select(g, scores, 6, "greedy", prune=False)
    assert int(greedy.kept.sum()) == 6
    # Every greedy edge ends at the logits or at a node the circuit already reaches from them.
    reached = {"logits"} | {u for u, _ in greedy.edges()}
    assert all(v.split("<")[0] in reached for _, v in greedy.edges())


def test_circuits_are_identical_for_a_fixed_seed() -> None:
    from specc.circuits.discover import discover

    model, pairs = _trained_task_model("pythia")
    cfg = {"component": "eap_ig", "data": {"member": "circuit"}, "steps": 3, "keep": 0.1,
           "metric": {"component": "kl_last_token"}}
    a, _ = discover(model, pairs, cfg)
    b, _ = discover(model, pairs, cfg)
    assert a.edges() == b.edges()


def test_circuit_aware_lora_end_to_end(tmp_path: Path) -> None:
    import json

    from specc.cli.main import main

    spec = tmp_path / "cl.exp"
    spec.write_text("""experiment cl {
  model base = pythia(layers = 4, heads = 2, width = 32, context = 16, vocab = numbers(0..199))
  data task = arithmetic(ops = ["+", "-"], max = 100, train = 200, test = 24,
                         corrupt = flip_operator)
  circuit = eap_ig(data = task.circuit, metric = kl_last_token, steps = 3, keep = 10%)
  policy ca = circuit_lora(probe = lora(rank = 2), probe_epochs = 0.3,
                           critical = top_layers(1), rank_other = 2, rank_critical = 8)
  policy = ca
  check params(ca) == 7168
  train {
    optimizer = adamw(lr = 3e-3)
    batch = 16
    steps = 10
    eval_every = 5
  }
  checkpoints every 5 steps { measure circuit }
  metrics = [loss, node_jaccard(circuit, base), edge_jaccard(circuit, base),
             faithfulness(circuit)]
}
""")
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    [run] = [p for p in (root / "cl").iterdir() if p.is_dir()]
    alloc = json.loads((run / "allocation.json").read_text())
    assert sorted(alloc["ranks"]) == [2, 2, 2, 8] and len(alloc["critical_layers"]) == 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["params"]["trainable"] == 7168  # the compile-time check, at run time
    circuits = sorted(p.name for p in (run / "circuits").iterdir())
    assert circuits == ["base.json", "probe.json", "step-00000005.json", "step-00000010.json"]
    rows = MetricsLog(run / "metrics.jsonl").rows()
    assert 0.0 <= rows[-1]["edge_jaccard"] <= 1.0
    # faithfulness was declared and refused at run time once; now it is the circuit's own.
    step10 = json.loads((run / "circuits" / "step-00000010.json").read_text())
    assert rows[-1]["faithfulness.normalized"] == step10["faithfulness"]["normalized"]
    # The peft model has exactly the allocated rank on every module of every layer.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run / "final" / "model")
    peft = PeftModel.from_pretrained(base, run / "final" / "adapter")
    for name, module in peft.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            layer = int(name.split("layers.")[1].split(".")[0])
            assert module.lora_A["default"].weight.shape[0] == alloc["ranks"][layer]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_attribution_runs_in_the_models_dtype(dtype: str) -> None:
    """Pretrained checkpoints keep their dtype (Pythia's are fp16): every method runs on them,
    scores come out in fp32 (fp64 for an fp64 model), close to the fp32 model's."""
    import torch

    from specc.circuits.attribute import Attributor

    model, pairs = _trained_task_model("gpt2")
    ref = Attributor(model, pairs[:8], "kl_last_token", batch=8)
    want = ref.exact()[ref.mask]
    cast = model.to(getattr(torch, dtype))  # type: ignore[attr-defined]
    att = Attributor(cast, pairs[:8], "kl_last_token", batch=8)
    wide = torch.float64 if dtype == "float64" else torch.float32
    for scores in (att.eap(), att.eap_ig(2), att.exact()):
        assert scores.dtype == wide and torch.isfinite(scores).all()
    got = att.exact()[att.mask].float()
    assert torch.corrcoef(torch.stack([got, want.float()]))[0, 1] > 0.99
    faith = att.faithfulness(att.mask)
    assert faith["circuit"] == pytest.approx(0.0, abs=0.05)  # every edge kept: the clean run
