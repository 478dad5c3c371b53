"""CUDA checks (skipped without a GPU): the quickstart-sized job in bf16, eager and compiled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specc.cli.main import main
from specc.store.runs import MetricsLog

SPEC = """experiment gpu {{
  model base = gpt2(layers = 2, heads = 4, width = 128, context = 16, vocab = numbers(0..199))
  data task = arithmetic(ops = ["+", "-"], max = 100, train = 4500, test = 500)
  train {{
    optimizer = adamw(lr = 2e-3)
    batch = 64
    steps = 60
    eval_every = 30
    compile = {compile}
  }}
  metrics = [loss, exact_match(task.test)]
}}
"""


def _run(tmp: Path, compile_: str) -> dict[str, object]:
    spec = tmp / f"gpu_{compile_}.exp"
    spec.write_text(SPEC.format(compile=compile_))
    root = tmp / f"runs_{compile_}"
    assert main(["run", str(spec), "--root", str(root), "--backend", "cuda", "--quiet"]) == 0
    [run] = [p for p in (root / "gpu").iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text())
    rows = MetricsLog(run / "metrics.jsonl").rows()
    return {"manifest": manifest, "rows": rows}


@pytest.mark.cuda
def test_cuda_run_in_bf16_learns(tmp_path: Path) -> None:
    out = _run(tmp_path, "false")
    m = out["manifest"]
    assert m["backend"] == "cuda" and m["status"] == "finished"  # type: ignore[index]
    rows = out["rows"]
    assert rows[-1]["loss"] < rows[0]["loss"] + 1e-6  # type: ignore[index]


@pytest.mark.cuda
def test_compiled_step_matches_eager(tmp_path: Path) -> None:
    eager = _run(tmp_path, "false")["rows"][-1]  # type: ignore[index]
    compiled = _run(tmp_path, "true")["rows"][-1]  # type: ignore[index]
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=0.05)
