"""FSDP2 on the torch backend (`strategy = fsdp`), on CPU processes with gloo: the losses of
DDP and of one process, sharded checkpoints that resume at another world size (Note [Sharded
checkpoints])."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specc.cli.main import main
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]

SPEC = """experiment tiny {{
  model base = {model}
  data task = arithmetic(ops = ["+"], max = 20, train = 200, test = 50)
  policy = {policy}
  train {{
    optimizer = adamw(lr = 3e-3)
    schedule = constant()
    batch = 16
    steps = {steps}
    eval_every = 10
    checkpoint_every = 10
    grad_clip = 1.0
    ewa = [0.9]
{layout}  }}
  metrics = [loss, exact_match(task.test)]
}}
"""
GPT2 = "gpt2(layers = 2, heads = 2, width = 32, context = 16, vocab = numbers(0..99))"
LAYOUTS = {"one": "", "ddp2": "    devices = 2\n    strategy = ddp\n",
           "fsdp2": "    devices = 2\n    strategy = fsdp\n",
           "fsdp4": "    devices = 4\n    strategy = fsdp\n"}


def _spec(tmp: Path, layout: str, steps: int = 20, model: str = GPT2,
          policy: str = "full") -> Path:
    path = tmp / f"{layout}.exp"
    path.write_text(SPEC.format(model=model, policy=policy, steps=steps,
                                layout=LAYOUTS[layout]))
    return path


def _cmd(spec: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root", str(root),
            "--quiet"]


ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _run(spec: Path, root: Path) -> None:
    out = subprocess.run(_cmd(spec, root), cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]


def _the_run(root: Path) -> Path:
    [run] = [d for d in (root / "tiny").iterdir() if d.is_dir()]
    return run


def _rows(root: Path) -> list[dict[str, object]]:
    return MetricsLog(_the_run(root) / "metrics.jsonl").rows(None)


def _same_rows(a: list[dict[str, object]], b: list[dict[str, object]]) -> None:
    keys = ("train_loss", "loss", "loss@ewa0.9", "grad_norm")
    assert [(r.get("kind"), r["step"]) for r in a] == [(r.get("kind"), r["step"]) for r in b]
    for x, y in zip(a, b, strict=True):
        for k in keys:
            if k in x or k in y:
                assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-6), (x["step"], k)


@pytest.mark.slow
def test_fsdp2_on_two_and_four_processes_trains_the_losses_of_ddp_and_one_process(
        tmp_path: Path) -> None:
    """20 steps with clipping and a weight average: every training and evaluation row of
    FSDP2 on 2 and 4 processes equals DDP's and one process's within 1e-5, and so do the
    final weights (gathered from the shards into final/model)."""
    from safetensors.torch import load_file

    rows, weights = {}, {}
    for layout in LAYOUTS:
        root = tmp_path / layout
        spec = _spec(tmp_path, layout)
        if layout == "one":
            assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
        else:
            _run(spec, root)
        run = _the_run(root)
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "finished"
        assert manifest["world_size"] == {"one": 1, "ddp2": 2, "fsdp2": 2, "fsdp4": 4}[layout]
        rows[layout] = _rows(root)
        weights[layout] = load_file(run / "final" / "model" / "model.safetensors")
        ckpt = run / "checkpoints" / "step-00000010"
        assert (ckpt / "shards").is_dir() == layout.startswith("fsdp")
    # the world layout is how a run executes, not what it computes: one run hash for all four
    assert len({_the_run(tmp_path / layout).name for layout in LAYOUTS}) == 1
    for layout in ("ddp2", "fsdp2", "fsdp4"):
        _same_rows(rows["one"], rows[layout])
        assert weights[layout].keys() == weights["one"].keys()
        for name, tensor in weights["one"].items():
            assert (weights[layout][name] - tensor).abs().max() < 1e-4, (layout, name)
    assert [r["step"] for r in rows["fsdp4"] if "loss" in r] == [10, 20]


def _interrupt_after(spec: Path, root: Path, start: int) -> int:
    """Start the run, SIGTERM its process group (as a cluster preempting it does) once it has
    written a checkpoint past ``start``; returns the step its interruption checkpoint holds."""
    proc = subprocess.Popen(_cmd(spec, root), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not any(int(p.name.split("-")[1]) > start
                  for p in root.glob("tiny/*/checkpoints/step-*")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.count("interrupted (SIGTERM)") == 1, err  # said once, not by every rank
    manifest = json.loads((_the_run(root) / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    return int(manifest["step"])


@pytest.mark.slow
def test_a_checkpoint_resumes_at_another_world_size_and_strategy(tmp_path: Path) -> None:
    """Preempted three times, each time resumed on another layout: FSDP2 on 4 processes, then
    on 2 (shards resharded), then one process (shards into whole tensors), then FSDP2 on 2
    (whole tensors sharded). Every row equals the uninterrupted one-process run's."""
    steps = 60
    root = tmp_path / "runs"
    at = 0
    for layout in ("fsdp4", "fsdp2", "one"):
        at = _interrupt_after(_spec(tmp_path, layout, steps), root, at)
        assert 0 < at < steps
    _run(_spec(tmp_path, "fsdp2", steps), root)
    resumed = _rows(root)
    reference = tmp_path / "reference"
    assert main(["run", str(_spec(tmp_path / "..", "one", steps)), "--root", str(reference),
                 "--quiet"]) == 0
    _same_rows(_rows(reference), resumed)
    assert [r["step"] for r in resumed if "loss" in r] == [10, 20, 30, 40, 50, 60]


@pytest.mark.slow
def test_fsdp2_shards_a_lora_llama(tmp_path: Path) -> None:
    """A LoRA policy (frozen base weights beside trainable adapters in each block) on a llama:
    FSDP2 on 2 processes trains one process's losses; final/adapter is saved."""
    model = "llama(layers = 2, heads = 2, width = 32, context = 16, vocab = numbers(0..99))"
    rows = {}
    for layout in ("one", "fsdp2"):
        spec = _spec(tmp_path, layout, model=model, policy="lora(rank = 4)")
        root = tmp_path / layout
        if layout == "one":
            assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
        else:
            _run(spec, root)
        rows[layout] = _rows(root)
        assert (_the_run(root) / "final" / "adapter").is_dir()
    _same_rows(rows["one"], rows["fsdp2"])


def test_shard_metadata_cannot_run_code(tmp_path: Path) -> None:
    """DCP pickles its metadata; specc reads it with an allow-list, so a tampered checkpoint
    is reported as damaged and nothing it names runs. An honest one loads."""
    import torch

    from specc.runtime import checkpoint as sharded

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    sharded.save(tmp_path / "shards", model, opt, {})
    other = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    other_opt = torch.optim.AdamW(other.parameters())
    sharded.load(tmp_path / "shards", other, other_opt, {})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 other.state_dict().values(), strict=True))
    assert other_opt.state_dict()["state"][0]["step"] == 1

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "shards" / ".metadata").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="not part of a checkpoint"):
        sharded.load(tmp_path / "shards", other, other_opt, {})
    assert not marker.exists()
