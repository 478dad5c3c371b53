"""`specc run` on the CPU: training, the store, resume, failures, policies, data, models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from specc.cli.main import main
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]

TINY = """experiment tiny {{
  model base = {model}
  data task = {data}
  policy = {policy}
  train {{
    optimizer = {optimizer}
    schedule = {schedule}
    batch = {batch}
    {budget}
    eval_every = {eval_every}
{extra}  }}
  metrics = [{metrics}]
}}
"""
DEFAULTS = dict(
    model="gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))",
    data="arithmetic(ops = [\"+\"], max = 20, train = 200, test = 50)",
    policy="full", optimizer="adamw(lr = 3e-3)", schedule="constant()", batch=16,
    budget="steps = 30", eval_every=10, extra="",
    metrics="loss, exact_match(task.test), token_accuracy, trainable_params",
)


def spec(tmp: Path, name: str = "tiny.exp", **kw: object) -> Path:
    values = {**DEFAULTS, **kw}
    path = tmp / name
    path.write_text(TINY.format(**values))
    return path


def run_dirs(root: Path, exp: str = "tiny") -> list[Path]:
    return sorted(p for p in (root / exp).iterdir() if p.is_dir())


def metrics(run: Path) -> list[dict[str, object]]:
    return MetricsLog(run / "metrics.jsonl").rows()


def manifest(run: Path) -> dict[str, object]:
    return json.loads((run / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_run_records_manifest_metrics_checkpoints_and_index(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert main(["run", str(spec(tmp_path)), "--root", str(root), "--quiet"]) == 0
    [run] = run_dirs(root)
    m = manifest(run)
    assert m["status"] == "finished" and m["reason"] is None
    assert m["hash"] == run.name and m["backend"] == "cpu"
    assert set(m["versions"]) == {"python", "specc", "torch", "transformers", "peft"}  # type: ignore[arg-type]
    assert m["spec"]["path"].endswith("tiny.exp")  # type: ignore[index]
    rows = metrics(run)
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert all({"tokens", "loss", "exact_match", "token_accuracy", "train_loss"} <= set(r)
               for r in rows)
    assert rows[-1]["trainable_params"] == m["params"]["trainable"]  # type: ignore[index]
    assert rows[-1]["tokens"] > rows[0]["tokens"] > 0
    assert (run / "final" / "model" / "config.json").exists()
    import sqlite3

    con = sqlite3.connect(root / "index.sqlite")
    [(h, status)] = con.execute("SELECT hash, status FROM runs").fetchall()
    assert h == run.name and status == "finished"


def test_finished_run_is_not_rerun_unless_forced(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root, s = tmp_path / "runs", spec(tmp_path, budget="steps = 10")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    first = (run_dirs(root)[0] / "metrics.jsonl").stat().st_mtime_ns
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (run_dirs(root)[0] / "metrics.jsonl").stat().st_mtime_ns == first
    assert main(["run", str(s), "--root", str(root), "--quiet", "--force"]) == 0
    assert (run_dirs(root)[0] / "metrics.jsonl").stat().st_mtime_ns != first


def test_training_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    s = spec(tmp_path, budget="steps = 20")
    for root in ("a", "b"):
        assert main(["run", str(s), "--root", str(tmp_path / root), "--quiet"]) == 0
    a, b = (metrics(run_dirs(tmp_path / r)[0]) for r in ("a", "b"))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


# One thread in every process a test compares: a 400-step run amplifies the last-bit
# differences of another thread count (or of a loaded machine's) far beyond a tolerance.
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


def _start(s: Path, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "specc.cli.main", "run", str(s), "--root",
                             str(root), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ONE_THREAD)


def _wait_for_checkpoint(root: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        pointers = list(root.glob("tiny/*/checkpoints/LATEST"))
        if pointers and int(pointers[0].read_text().split("-")[1]) >= at_least:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 400", eval_every=20, batch=32,
             model="gpt2(layers = 2, heads = 2, width = 64, context = 16, vocab = numbers(0..99))")
    proc = _start(s, root)
    _wait_for_checkpoint(root, proc, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [run] = run_dirs(root)
    assert manifest(run)["status"] == "running"  # what a kill -9 leaves behind
    cmd = [sys.executable, "-m", "specc.cli.main", "run", str(s), "--quiet", "--root"]
    done = subprocess.run([*cmd, str(root)], cwd=ROOT, capture_output=True, text=True,
                          env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert "resumed at step" in done.stdout
    steps = [r["step"] for r in metrics(run)]
    assert steps == list(range(20, 401, 20)), steps
    assert manifest(run)["status"] == "finished"
    # The resumed run reaches what an uninterrupted run reaches (same data order, same RNG).
    clean = tmp_path / "clean"
    subprocess.run([*cmd, str(clean)], cwd=ROOT, check=True, capture_output=True,
                   env=ONE_THREAD)
    a, b = metrics(run)[-1], metrics(run_dirs(clean)[0])[-1]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 400", eval_every=20, batch=32)
    proc = _start(s, root)
    _wait_for_checkpoint(root, proc, 20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [run] = run_dirs(root)
    m = manifest(run)
    assert m["status"] == "interrupted" and "checkpoint was saved" in str(m["reason"])
    stopped_at = int(m["step"])  # type: ignore[arg-type]
    pointer = (run / "checkpoints" / "LATEST").read_text()
    assert int(pointer.split("-")[1]) == stopped_at
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    assert manifest(run)["status"] == "finished"


def test_nan_loss_stops_the_run_with_its_reason(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, optimizer="sgd(lr = 1e30, momentum = 0.0)", extra="    grad_clip = none\n",
             budget="steps = 50")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 1
    m = manifest(run_dirs(root)[0])
    assert m["status"] == "failed"
    assert "loss became" in str(m["reason"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "tiny.exp:1:" in err


def test_missing_file_points_at_the_spec_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, data='jsonl(path = "missing.jsonl")',
             metrics="loss")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "tiny.exp:3:3: error: data task: data file \"missing.jsonl\" does not exist" in err
    assert "Traceback" not in err
    assert manifest(run_dirs(root)[0])["status"] == "failed"


def test_unknown_hub_id_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    s = spec(tmp_path, model='pretrained("nobody/no-such-model")', metrics="loss")
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "tiny.exp:2:3" in err and "nothing is downloaded" not in err
    assert "never downloads at run time" in err


def test_oom_is_reported_at_the_train_block(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from specc.runtime import loop

    def oom(self: object, step: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop.Trainer, "train_step", oom)
    s = spec(tmp_path)
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "out of memory at step 0 with batch 16" in err and "train.accumulate" in err
    assert "tiny.exp:8:5" in err and "batch = 16" in err


def test_local_pretrained_directory_and_checkpoint_of_another_experiment(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 10")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    final = run_dirs(root)[0] / "final" / "model"
    local = spec(tmp_path, "local.exp", model=f'pretrained("{final}")', budget="steps = 5")
    assert main(["run", str(local), "--root", str(tmp_path / "r2"), "--quiet"]) == 0
    follow = tmp_path / "follow.exp"
    follow.write_text('import "tiny.exp"\n\nexperiment follow extends tiny {\n'
                      "  model base = checkpoint(tiny)\n  train { steps = 5 }\n}\n")
    assert main(["run", str(follow), "--root", str(root), "--quiet"]) == 0
    assert manifest(run_dirs(root, "follow")[0])["status"] == "finished"


def test_checkpoint_dependency_runs_first(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec(tmp_path, budget="steps = 5")
    follow = tmp_path / "follow.exp"
    follow.write_text('import "tiny.exp"\n\nexperiment follow {\n'
                      "  model base = checkpoint(tiny)\n"
                      '  data task = arithmetic(ops = ["+"], max = 20, train = 100, test = 20)\n'
                      "  train { steps = 5 }\n}\n")
    root = tmp_path / "runs"
    assert main(["run", str(follow), "--root", str(root), "--quiet"]) == 0
    assert "running tiny first" in capsys.readouterr().out
    assert run_dirs(root, "tiny") and run_dirs(root, "follow")
    [first] = run_dirs(root, "follow")
    # A new definition of the dependency is a new dependency: it is trained, and the follower
    # is a new run that starts from it (never from the old definition's result).
    spec(tmp_path, budget="steps = 7")
    assert main(["run", str(follow), "--root", str(root), "--quiet"]) == 0
    assert "running tiny first" in capsys.readouterr().out
    tiny_runs = run_dirs(root, "tiny")
    assert len(tiny_runs) == 2
    [second] = [r for r in run_dirs(root, "follow") if r != first]
    base = manifest(second)["config"]["model"]  # type: ignore[index]
    [newest] = [r for r in tiny_runs if manifest(r)["config"]["train"]["steps"] == 7]  # type: ignore[index]
    assert base["runs"] == [newest.name]  # type: ignore[index]
    # and running it again finds everything finished
    assert main(["run", str(follow), "--root", str(root), "--quiet"]) == 0
    assert "running tiny first" not in capsys.readouterr().out


# peft's AdaLoRA stores its allocated ranks under `.lora_E` keys and warns about them on load.
@pytest.mark.filterwarnings("ignore:The following rank_pattern keys:RuntimeWarning")
@pytest.mark.parametrize("policy", ["lora(rank = 4, alpha = 8)",
                                    "lora(rank = 2, targets = attention)",
                                    "adalora(init_rank = 6, target_rank = 2)",
                                    "random_layers_lora(count = 1, rank_other = 2, "
                                    "rank_critical = 8)"])
def test_adapter_policies_save_in_peft_format(tmp_path: Path, policy: str) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, policy=policy, budget="steps = 12", eval_every=6,
             model="pythia(layers = 2, heads = 2, width = 32, context = 16, "
                   "vocab = numbers(0..99))")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [run] = run_dirs(root)
    m = manifest(run)
    assert 0 < m["params"]["trainable"] < m["params"]["total"] / 4  # type: ignore[index]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run / "final" / "model")
    loaded = PeftModel.from_pretrained(base, run / "final" / "adapter")
    assert loaded.peft_config["default"].peft_type.value in ("LORA", "ADALORA")


def test_freeze_policy_trains_only_what_is_left(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, policy='freeze(patterns = ["wte", "wpe", "h\\\\.0\\\\.attn"])',
             budget="steps = 4", eval_every=4)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    m = manifest(run_dirs(root)[0])
    assert m["params"]["trainable"] < m["params"]["total"]  # type: ignore[index]


def test_epoch_and_token_budgets(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="epochs = 2", eval_every=0)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [run] = run_dirs(root)
    assert metrics(run)[-1]["step"] == 25  # ceil(2 * 200 / 16)
    s2 = spec(tmp_path, "tok.exp", budget="tokens = 2k", eval_every=0)
    assert main(["run", str(s2), "--root", str(tmp_path / "t"), "--quiet"]) == 0
    last = metrics(run_dirs(tmp_path / "t")[0])[-1]
    assert last["tokens"] >= 2000


def test_stop_when_ends_early(tmp_path: Path) -> None:
    s = spec(tmp_path, budget="steps = 200", eval_every=5,
             extra="    stop_when = loss(task.test) < 100\n")
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 0
    assert [r["step"] for r in metrics(run_dirs(tmp_path / "runs")[0])] == [5]


def test_ewa_is_evaluated_alongside_the_raw_weights(tmp_path: Path) -> None:
    s = spec(tmp_path, budget="steps = 10", extra="    ewa = [0.9, 0.99]\n", metrics="loss")
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 0
    row = metrics(run_dirs(tmp_path / "runs")[0])[-1]
    assert {"loss", "loss@ewa0.9", "loss@ewa0.99"} <= set(row)
    assert row["loss@ewa0.99"] != row["loss"]


def test_streams_and_local_corpora(tmp_path: Path) -> None:
    s = spec(tmp_path, data="zipf_ngrams(vocab = 64, rules = 64, heldout = 8)",
             model="gpt2(layers = 1, heads = 2, width = 32, context = 32, vocab = bytes)",
             metrics="loss, perplexity", budget="steps = 6", eval_every=3)
    assert main(["run", str(s), "--root", str(tmp_path / "z"), "--quiet"]) == 0
    rows = metrics(run_dirs(tmp_path / "z")[0])
    assert rows[-1]["perplexity"] > 1
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 60)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": f"line {i} of text"}) + "\n"
                                              for i in range(300)))
    (tmp_path / "c.csv").write_text("text\n" + "".join(f"row {i},\n" for i in range(300)))
    for data in ('text_files(glob = "corpus/*.txt")', 'jsonl(path = "c.jsonl")',
                 'csv(path = "c.csv")'):
        s = spec(tmp_path, "c.exp", data=data, metrics="loss", budget="steps = 3",
                 eval_every=3,
                 model="gpt2(layers = 1, heads = 2, width = 32, context = 32, vocab = bytes)")
        root = tmp_path / f"r{abs(hash(data))}"
        assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0, data


def test_models_match_compile_time_parameter_counts() -> None:
    import specc
    from specc.components.models import build_model

    src = """experiment e {{
  model m = {m}
}}"""
    for m in ("gpt2(layers = 2, heads = 4, width = 64, context = 32, vocab = numbers(0..99))",
              "pythia(layers = 3, heads = 4, width = 64, context = 32, vocab = bytes)",
              "llama(layers = 2, heads = 4, kv_heads = 2, width = 64, context = 32, "
              "vocab = numbers(0..9))"):
        result = specc.plan(src.format(m=m))
        assert result.ok, result.render()
        [run] = list(result.plan.experiments[0].runs())  # type: ignore[union-attr]
        cfg = run.config["model"]
        from specc.components.vocab import build_vocab

        vocab = build_vocab(cfg["vocab"], ROOT)
        model = build_model(cfg, vocab.size, base=ROOT, store_root=ROOT)
        real = sum(p.numel() for p in model.parameters())
        assert real == result.program.experiments[0].params, m  # type: ignore[union-attr]


def test_random_layers_lora_gives_exact_ranks() -> None:
    from specc.components.models import build_model
    from specc.components.policies import apply_policy, random_layer_ranks

    cfg = {"component": "pythia", "vocab": {"component": "bytes"}, "layers": 12, "heads": 2,
           "width": 32, "context": 16, "mlp_ratio": 4, "dropout": 0.0, "rotary_pct": 0.25}
    model = build_model(cfg, 50, base=ROOT, store_root=ROOT)
    policy = {"component": "random_layers_lora", "count": 3, "rank_other": 2,
              "rank_critical": 8, "alpha_ratio": 2.0, "targets": {"component": "all_linear"},
              "seed": 4}
    ranks = random_layer_ranks(12, 3, 2, 8, 4)
    peft_model = apply_policy(model, policy, 10)
    seen = 0
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            layer = int(name.split("layers.")[1].split(".")[0])
            assert module.r["default"] == ranks[layer], name
            assert module.lora_A["default"].weight.shape[0] == ranks[layer]
            seen += 1
    assert seen == 12 * 4  # every linear module of every layer (layer 1 never took 11's rank)


def test_gradient_accumulation_is_token_normalized(tmp_path: Path) -> None:
    rows = {}
    for accum in (1, 4):
        s = spec(tmp_path, f"a{accum}.exp", budget="steps = 6", eval_every=6, batch=16,
                 extra=f"    accumulate = {accum}\n",
                 data='arithmetic(ops = ["+", "-"], max = 20, train = 200, test = 50)')
        root = tmp_path / f"acc{accum}"
        assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
        rows[accum] = metrics(run_dirs(root, "tiny")[0])[-1]
    assert rows[1]["loss"] == pytest.approx(rows[4]["loss"], rel=1e-4)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one(tmp_path: Path) -> None:
    one = spec(tmp_path, "one.exp", budget="steps = 8", eval_every=8, batch=16)
    two = spec(tmp_path, "two.exp", budget="steps = 8", eval_every=8, batch=16,
               extra="    devices = 2\n")
    assert main(["run", str(one), "--root", str(tmp_path / "one"), "--quiet"]) == 0
    out = subprocess.run([sys.executable, "-m", "specc.cli.main", "run", str(two), "--root",
                          str(tmp_path / "two"), "--quiet"], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = run_dirs(tmp_path / "two")
    assert manifest(run)["world_size"] == 2
    a, b = metrics(run_dirs(tmp_path / "one")[0])[-1], metrics(run)[-1]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)


def test_runs_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 20")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "--root", str(root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "finished" and "exact_match" in row["final"]
    out = tmp_path / "report"
    assert main(["report", row["hash"][:8], "--root", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exact_match" in text and row["hash"] in text
    html = (out / "index.html").read_text()
    assert "<img" in html and (out / f"tiny-{row['hash']}_curves.png").stat().st_size > 1000
    assert main(["report", str(s), "--root", str(root), "--out", str(out)]) == 0
    assert main(["report", "nope", "--root", str(root)]) == 2


def test_report_of_a_spec_shows_its_current_runs_only(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 10", eval_every=10)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [old] = run_dirs(root)
    spec(tmp_path, budget="steps = 12", eval_every=12)  # a new definition: a new run
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [new] = [r for r in run_dirs(root) if r != old]
    capsys.readouterr()
    assert main(["report", str(s), "--root", str(root), "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert new.name in text and old.name not in text
    assert main(["report", str(s), "--root", str(root), "--out", str(tmp_path / "r"),
                 "--all"]) == 0
    text = capsys.readouterr().out
    assert new.name in text and old.name in text


def test_a_task_smaller_than_its_splits_is_a_located_error(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    s = spec(tmp_path, data='arithmetic(ops = ["+"], max = 5, train = 100, test = 10)')
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    # caught by check, at the data's own line, before anything runs
    assert "tiny.exp:3:15" in err and "has 25 distinct examples" in err
    assert "Traceback" not in err


def test_every_task_gives_equal_length_clean_corrupt_pairs() -> None:
    from specc.components.data import build_data
    from specc.components.vocab import NumbersVocab

    vocab = NumbersVocab(0, 199)
    tasks = [
        {"component": "arithmetic", "ops": ["+", "-", "*", "/"], "max": 50},
        {"component": "sequence", "kind": "arithmetic", "length": 4, "max": 100},
        {"component": "sequence", "kind": "geometric", "length": 4, "max": 100},
        {"component": "lcm", "max": 30},
        {"component": "linear_fn", "max": 20},
        {"component": "compositional", "inner": ["+", "-"], "outer": ["*"], "max": 20},
    ]
    for t in tasks:
        cfg = {**t, "train": 50, "test": 40, "seed": 1,
               "corrupt": {"component": "flip_operator"}}
        data = build_data(cfg, vocab, 64, ROOT, 0)
        pairs = data.pairs()
        assert len(pairs) >= 10, t
        assert all(len(c) == len(k) for c, k, _ in pairs), t
        assert all(c != k for c, k, _ in pairs), t
        train = {e.prompt for e in data.splits["train"]}
        assert not train & {e.prompt for e in data.splits["test"]}, "splits overlap"


def test_tokenizer_from_a_local_directory(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["1 + 2 = 3", "12 - 7 = 5"] * 50,
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="[UNK]")
    fast.save_pretrained(tmp_path / "tok")
    s = spec(tmp_path, model='gpt2(layers = 1, heads = 2, width = 32, context = 32, '
                            'vocab = tokenizer("tok"))', budget="steps = 3", eval_every=3)
    assert main(["run", str(s), "--root", str(tmp_path / "runs"), "--quiet"]) == 0


def test_parquet_and_missing_hub_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [f"text number {i}" for i in range(200)]}),
                   tmp_path / "c.parquet")
    small = "gpt2(layers = 1, heads = 2, width = 32, context = 32, vocab = bytes)"
    s = spec(tmp_path, data='parquet(path = "c.parquet", field = "body")', model=small,
             metrics="loss", budget="steps = 3", eval_every=3)
    assert main(["run", str(s), "--root", str(tmp_path / "p"), "--quiet"]) == 0
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    s = spec(tmp_path, "hub.exp", data='hf_dataset(id = "nobody/none")', model=small,
             metrics="loss", budget="steps = 3", eval_every=3)
    assert main(["run", str(s), "--root", str(tmp_path / "h"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "hub.exp:3:3" in err and "not in the local Hugging Face cache" in err
    # datasets was imported by the parquet run before: its offline switch is on all the same
    # (Note [Offline]), and the message names the command that fills the cache
    assert "hf download nobody/none --repo-type dataset" in err
    import datasets.config
    import huggingface_hub.constants

    assert datasets.config.HF_DATASETS_OFFLINE and huggingface_hub.constants.HF_HUB_OFFLINE


@pytest.fixture(scope="module")
def quickstart_smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """`specc run specs/quickstart.exp --profile smoke` with stdout and stderr piped."""
    root = tmp_path_factory.mktemp("quickstart") / "runs"
    out = subprocess.run([sys.executable, "-m", "specc.cli.main", "run",
                          str(ROOT / "specs" / "quickstart.exp"), "--profile", "smoke",
                          "--root", str(root)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    [run] = list((root / "quickstart").iterdir())
    return out, run


def test_a_default_run_stores_its_learning_curve_and_prints_progress_lines(
        quickstart_smoke: tuple[Any, Path]) -> None:
    """Training rows every log_every steps (default 10) beside the evaluation rows; with stdout
    and stderr not a terminal, timestamped progress lines instead of a bar."""
    out, run = quickstart_smoke
    log = MetricsLog(run / "metrics.jsonl")
    train = log.rows("train")
    assert [r["step"] for r in train] == [10, 20]
    for r in train:
        assert {"train_loss", "lr", "tokens", "tokens_per_s", "grad_norm", "time"} <= r.keys()
        assert r["grad_norm"] > 0 and r["tokens_per_s"] > 0
    assert [r["step"] for r in log.rows()] == [20]  # the evaluation rows, as before
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  step 20/20 \(100%\), train_loss ",
                     out.stdout, re.M), out.stdout
    assert "\r" not in out.stdout + out.stderr  # no bar drawn into a log


def test_a_saved_model_loads_with_its_tokenizer_in_transformers(
        quickstart_smoke: tuple[Any, Path]) -> None:
    """final/model carries a tokenizer: AutoTokenizer and AutoModelForCausalLM load the
    directory, encode as specc does, and a text-generation pipeline generates past the prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from specc.components.vocab import NumbersVocab

    _, run = quickstart_smoke
    where = str(run / "final" / "model")
    tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True)
    vocab = NumbersVocab(0, 199)
    prompt = "37 + 45 ="
    assert tok.encode(prompt, add_special_tokens=False) == vocab.encode(prompt)
    assert len(tok) == vocab.size == model.config.vocab_size
    assert tok.eos_token_id == vocab.eos == model.generation_config.eos_token_id
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    new = model.generate(ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)[0, ids.shape[1]:]
    assert len(new) == 3 and tok.decode(new).strip()
    text = pipeline("text-generation", model=where, tokenizer=where, device="cpu")(
        prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)[0]["generated_text"]
    assert text.startswith(prompt) and len(text) > len(prompt), text
