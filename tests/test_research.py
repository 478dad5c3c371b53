"""Research as specs: S7 (feature learning in diffusion vs classification) asserts the paper's
claim at tiny scale through its `analysis` checks; the analysis statistics equal scipy's."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from specc.cli.main import main
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]
S7 = ROOT / "specs" / "feature_learning" / "feature_learning.exp"


def _components(spec_file: Path):  # type: ignore[no-untyped-def]
    """A research spec's component file, imported."""
    spec = importlib.util.spec_from_file_location(f"{spec_file.stem}_components",
                                                  spec_file.with_suffix(".py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _s7_module():  # type: ignore[no-untyped-def]
    return _components(S7)


def test_s7_claims_hold_at_both_ends(tmp_path: Path) -> None:
    """The classifier memorises noise at n*SNR^2 = 0.25 and learns the signal at 20 (the phase
    transition); the denoiser's signal and noise alignments are both >= 0.1 at both ends."""
    root = tmp_path / "runs"
    assert main(["run", str(S7), "--experiment", "feature_learning_ends", "--root", str(root),
                 "--quiet"]) == 0
    result = json.loads((root / "feature_learning_ends" / "analysis.json").read_text())
    assert result["runs"] == 4 and len(result["checks"]) == 6
    assert all(c["passed"] for c in result["checks"]), result["checks"]
    signal, noise = result["values"]["signal"], result["values"]["noise"]
    assert set(signal) == set(noise) and len(signal) == 4
    # the report recomputes the analysis and draws its figures
    out = tmp_path / "report"
    assert main(["report", str(S7), "--root", str(root), "--out", str(out)]) == 0
    assert (out / "feature_learning_ends_alignments.png").stat().st_size > 1000
    assert (out / "feature_learning_ends_ratio_by_snr.png").stat().st_size > 1000
    assert "feature_learning_ends_ratio_by_snr.png" in (out / "index.html").read_text()


def test_weight_probes_equal_their_closed_form() -> None:
    """Hand-set filters: the probes are max_r <w_r, mu_j>/|mu_j| averaged over classes, and the
    mean over examples of max_r <w_r, xi_i>/|xi_i| with the example's class filters."""
    import torch

    fl = _s7_module()
    data = fl.TwoPatches(6, 4, 2.0, 1.0, 3, seed=0)
    norm = math.sqrt(6 * 2.0 / 4)
    assert torch.allclose(data.mu.norm(dim=1), torch.tensor([norm, norm]))
    assert float(data.xi[:, :2].abs().sum()) == 0.0  # orthogonal to the signal
    net = fl.PatchNet(6, 2, "relu3", 0.01, tied=False)
    with torch.no_grad():
        net.w.zero_()
        net.w[1, 0, 0] = 3.0  # class +1 filter 0 along e_1 (mu_{+1})
        net.w[0, 1, 1] = 0.5  # class -1 filter 1 along e_2 (mu_{-1})
        net.w[0, 0, 2] = 1.0  # a class -1 filter on noise coordinate 2
    with torch.no_grad():
        assert fl.signal_probe(net, data) == pytest.approx((3.0 + 0.5) / 2)
        expected = []
        for i in range(4):
            xi, y = data.xi[i], int(data.y_train[i])
            w = net.w[y]
            expected.append(float((w @ xi).max() / xi.norm()))
        assert fl.noise_probe(net, data) == pytest.approx(sum(expected) / 4)
    tied = fl.PatchNet(6, 2, "square", 0.01, tied=True)
    with torch.no_grad():
        tied.w.zero_()
        tied.w[0, 0, 0] = 2.0
        tied.w[0, 1, 1] = 1.0
        assert fl.signal_probe(tied, data) == pytest.approx((2.0 + 1.0) / 2)
        x = data.x_train[:1]
        out = tied(x)  # (1/m) sum_r act(<w_r, x^(p)>) w_r, per patch
        manual = sum((float(x[0, 0] @ tied.w[0, r]) ** 2) * tied.w[0, r] for r in range(2)) / 2
        assert torch.allclose(out[0, 0], manual)


def _table_runs():  # type: ignore[no-untyped-def]
    from specc.report.analysis import RunData

    xs = [0.25, 0.75, 2.0, 6.75, 20.0, 0.25, 0.75, 2.0, 6.75, 20.0]
    ys = [0.3, 0.2, 0.9, 0.7, 1.9, 0.4, 0.1, 0.8, 1.1, 1.5]
    objs = ["a"] * 5 + ["b"] * 5
    return xs, ys, [RunData(f"r{i}", {"x": x, "obj": {"component": o}},
                            [{"step": 1, "m": y * 2}, {"step": 2, "m": y}])
                    for i, (x, y, o) in enumerate(zip(xs, ys, objs, strict=True))]


def test_analysis_statistics_equal_scipy() -> None:
    import numpy as np
    from scipy import stats

    import specc

    xs, ys, runs = _table_runs()
    spec = """experiment e {
  model m = gpt2(vocab = bytes)
  metrics = [loss]
  sweep grid { x in [0.25, 0.75, 2.0, 6.75, 20.0]; obj in [a, b] }
  analysis {
    f = linear_fit(x = x, y = final(loss))
    s = spearman(x = x, y = loss)
    k = kendall_tau(x = x, y = loss)
    ka = kendall_tau(x = x, y = loss, when = obj == a)
    avg = mean(loss, when = x >= 2.0)
    mid = median(best(loss))
    sd = std(loss)
    n = count(when = obj == b)
    g = granulated_tau(x = x, y = loss, axes = [x, obj])
    check f.slope > 0
  }
}"""
    result = specc.compile(spec.replace("[a, b]", '["a", "b"]'))
    assert result.program is not None
    analysis = result.program.experiments[0].analysis
    assert analysis is not None and len(analysis.steps) == 10
    from specc.report.analysis import evaluate

    # the table's metric is called "m": rename the analysis's metric key to it
    runs = [type(r)(r.name, r.bindings, [{k.replace("m", "loss"): v for k, v in row.items()}
                                         for row in r.rows]) for r in runs]
    out = evaluate(analysis, runs)
    fit = stats.linregress(xs, ys)
    assert out.values["f"]["slope"] == pytest.approx(fit.slope)
    assert out.values["f"]["intercept"] == pytest.approx(fit.intercept)
    assert out.values["f"]["r2"] == pytest.approx(fit.rvalue ** 2)
    assert out.values["s"] == pytest.approx(stats.spearmanr(xs, ys).statistic)
    assert out.values["k"] == pytest.approx(stats.kendalltau(xs, ys).statistic)
    assert out.values["ka"] == pytest.approx(stats.kendalltau(xs[:5], ys[:5]).statistic)
    assert out.values["avg"] == pytest.approx(np.mean([y for x, y in zip(xs, ys, strict=True)
                                                       if x >= 2.0]))
    assert out.values["mid"] == pytest.approx(np.median(ys))  # best of a loss: its minimum
    assert out.values["sd"] == pytest.approx(np.std(ys, ddof=1))
    assert out.values["n"] == 5.0
    # granulated over x within each obj (over obj at a fixed x, x does not vary: no tau)
    assert out.values["g"] == pytest.approx(np.mean([stats.kendalltau(xs[:5], ys[:5]).statistic,
                                                     stats.kendalltau(xs[5:], ys[5:]).statistic]))
    assert out.ok
    bad = specc.check(spec.replace("[a, b]", '["a", "b"]').replace("[x, obj]", "[x, objective]"))
    unknown = [d for d in bad if d.code == "unknown-name"]
    assert len(unknown) == 1 and "obj" in (unknown[0].help or ""), bad


def test_a_failed_check_exits_1_at_its_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "specc.toml").write_text("")
    spec = tmp_path / "a.exp"
    spec.write_text("""experiment e {
  model m = gpt2(layers = 1, heads = 2, width = 16, context = 16, vocab = numbers(0..199))
  data t = arithmetic(max = 20, train = 64, test = 16)
  train { steps = 2; batch = 8 }
  sweep grid { seed in [0, 1] }
  analysis {
    worst = max(loss)
    check worst < 0.001
  }
}
""")
    assert main(["run", str(spec), "--root", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "a.exp:8:5: error: analysis check failed: worst < 0.001" in err
    assert "[check-failed]" in err and "is false" in err
    saved = json.loads((tmp_path / "runs" / "e" / "analysis.json").read_text())
    assert saved["runs"] == 2 and saved["checks"][0]["passed"] is False


# ------------------------------------------------------------------------------------- S8
S8 = ROOT / "specs" / "adce" / "adce.exp"


def _s8_module():  # type: ignore[no-untyped-def]
    return _components(S8)


def _s8_examples(spurious: float, n: int = 300):  # type: ignore[no-untyped-def]
    from specc.api import BuildContext

    s8 = _s8_module()
    return s8, s8.templated(grammar="classify", max=100, filler=3, spurious=spurious, train=1,
                            test=n, seed=0, ctx=BuildContext()).splits["test"]


class _Oracle:
    """A causal LM over bytes that answers by a rule on the prompt's words (no training):
    greedy decoding yields " <label>" then the end token."""

    def __init__(self, vocab, rule) -> None:  # type: ignore[no-untyped-def]
        import torch

        self.vocab, self.rule = vocab, rule
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):  # type: ignore[no-untyped-def]
        return iter([self.weight])

    def __call__(self, input_ids):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        import torch

        logits = torch.zeros(*input_ids.shape, self.vocab.size)
        for row, ids in enumerate(input_ids.tolist()):
            text = self.vocab.decode(ids[1:])
            prompt, _, said = text.partition(" :")
            target = [*self.vocab.encode(" " + self.rule(prompt)), self.vocab.eos]
            done = len(self.vocab.encode(said))
            logits[row, -1, target[min(done, len(target) - 1)]] = 1.0
        return SimpleNamespace(logits=logits)


def _paired(model, examples, core=None, surface=None):  # type: ignore[no-untyped-def]
    from specc.components import build
    from specc.components.mediation import effects
    from specc.components.vocab import BytesVocab

    terms = [(s, build(c)) for s, c in ((1.0, core), (-1.0, surface)) if c is not None]
    return effects(model, BytesVocab(), examples, terms, "flip")


def test_s8_oracles_without_training() -> None:
    """A model that reads only the core word: AICE = 0 and ADCE = TE (> 0). A model keyed on
    the spurious marker: masking the core changes nothing, masking surface spans (the marker
    among them) does: AICE > 0."""
    from specc.components.vocab import BytesVocab

    s8, examples = _s8_examples(0.5)
    vocab = BytesVocab()

    def by_core(prompt: str) -> str:
        words = prompt.split()
        return "pos" if any(w in s8.POSITIVE for w in words) else (
            "neg" if any(w in s8.NEGATIVE for w in words) else "pos")

    def by_marker(prompt: str) -> str:
        return "pos" if prompt.endswith("!") else "neg"

    core, near = {"component": "mask_core"}, {"component": "mask_noncore", "nearest": True}
    anywhere = {"component": "mask_noncore", "nearest": False}
    reader = _Oracle(vocab, by_core)
    te = _paired(reader, examples, core=core)
    aice = _paired(reader, examples, surface=near)
    adce = _paired(reader, examples, core=core, surface=near)
    assert sum(aice) == 0 and adce == te and 0.3 < sum(te) / len(te) < 0.7
    shortcut = _Oracle(vocab, by_marker)
    assert sum(_paired(shortcut, examples, core=core)) == 0
    assert sum(_paired(shortcut, examples, surface=anywhere)) < 0  # AICE > 0 (sign: -1)


def test_s8_interventions_act_on_the_roles() -> None:
    import random

    from specc.components import build

    _, [e, *_] = _s8_examples(0.5, n=5)
    [(_, a, b, alternatives)] = [r for r in e.roles if r[0] == "core"]
    masked = build({"component": "mask_core", "mask": "_"})(e, random.Random(0))
    assert masked == e.prompt[:a] + "_" * (b - a) + e.prompt[b:]
    noncore = build({"component": "mask_noncore", "nearest": True, "mask": "_"})(
        e, random.Random(0))
    changed = [i for i, (x, y) in enumerate(zip(e.prompt, noncore, strict=True)) if x != y]
    assert 0 < len(changed) <= b - a and not set(changed) & set(range(a, b))
    assert min(abs(i - a) for i in changed) <= 8  # a neighbouring filler word
    replaced = build({"component": "replace_core"})(e, random.Random(0))
    assert replaced != e.prompt and any(x in replaced for x in alternatives)


def test_s8_multiplication_prompts_mark_the_operands_as_core() -> None:
    import random

    from specc.api import BuildContext
    from specc.components import build

    s8 = _s8_module()
    examples = s8.templated(grammar="multiplication", max=100, filler=3, spurious=0.5, train=1,
                            test=20, seed=0, ctx=BuildContext()).splits["test"]
    for e in examples:
        cores = [e.prompt[a:b] for r, a, b, _ in e.roles if r == "core"]
        a, b = (int(x) for x in cores)
        assert e.prompt == f"Q: compute {a} times {b} please. A:" and e.answer == str(a * b)
    replaced = build({"component": "replace_core"})(examples[0], random.Random(1))
    assert replaced != examples[0].prompt and len(replaced) == len(examples[0].prompt)


def test_s8_metrics_need_a_task_with_roles() -> None:
    import specc

    errs = specc.check("""experiment e {
  model m = gpt2(layers = 1, heads = 1, width = 8, context = 32, vocab = numbers(0..99))
  data t = arithmetic()
  metrics = [adce(t.test)]
}""")
    assert [d.code for d in errs] == ["capability-mismatch"], errs
    assert "roles" in errs[0].message


def test_s8_claims_trained_and_random(tmp_path: Path) -> None:
    """Trained without a shortcut, ADCE > 0 with its interval above 0; with the marker agreeing
    99% of the time, ADCE falls while exact match stays >= 0.9x; random weights: the interval
    contains 0 (the spec's analysis checks)."""
    root = tmp_path / "runs"
    for exp in ("adce_ends", "adce_random"):
        assert main(["run", str(S8), "--experiment", exp, "--root", str(root), "--quiet"]) == 0
        result = json.loads((root / exp / "analysis.json").read_text())
        assert result["checks"] and all(c["passed"] for c in result["checks"]), result["checks"]
    ends = json.loads((root / "adce_ends" / "analysis.json").read_text())
    assert len(ends["checks"]) == 4 and ends["runs"] == 2


def test_s8_metrics_on_a_pretrained_model_from_a_directory(tmp_path: Path) -> None:
    """te, aice and adce on `pretrained(...)`: a Hugging Face model saved in a local directory
    with its vocabulary, evaluated only."""
    import shutil

    import transformers as tf

    conf = tf.GPT2Config(vocab_size=260, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    tf.GPT2LMHeadModel(conf).save_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "specc_vocab.json").write_text('{"component": "bytes"}')
    shutil.copy(S8.with_suffix(".py"), tmp_path / "adce.py")
    spec = tmp_path / "eval.exp"
    spec.write_text("""import python "adce.py"
experiment pretrained_eval {
  model lm = pretrained(source = "lm")
  data prompts = templated(grammar = classify, train = 10, test = 50)
  train { steps = 0 }
  metrics = [exact_match(prompts.test), te(prompts.test), aice(prompts.test),
             adce(prompts.test, formula = prob)]
}
""")
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    [run] = [p for p in (root / "pretrained_eval").iterdir() if p.is_dir()]
    rows = MetricsLog(run / "metrics.jsonl").rows()
    last = rows[-1]
    assert {"te", "te.lo", "aice", "adce", "adce.hi"} <= set(last), last
    assert last["te.lo"] <= last["te"] <= last["te.hi"]
