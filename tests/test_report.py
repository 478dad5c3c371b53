"""The report of a sweep: its own directory per spec and profile, a sortable HTML table in the
plan's order with rounded numbers, the runs overlaid on shared axes (one figure per metric,
seeds as a band), --json; an empty report is exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specc.cli.main import main

GRID = """experiment g {
  model m = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+"], max = 20, train = 200, test = 50)
  train { optimizer = adamw(lr = 1e-3); batch = 16; steps = 20; eval_every = 10 }
  metrics = [loss, exact_match(task.test)]
  sweep grid {
    train.optimizer.lr in [3e-3, 1e-3]
    seed in [0, 1]
  }
  profile short { train.steps = 10 }
}
"""


def test_the_report_of_a_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.exp"
    spec.write_text(GRID)
    root = tmp_path / "runs"
    assert main(["report", str(spec), "--root", str(root)]) == 1  # nothing ran yet
    assert "nothing to report" in capsys.readouterr().err
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--profile", "short"]) == 0
    capsys.readouterr()
    assert main(["report", str(spec), "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["report", str(spec), "--root", str(root), "--profile", "short"]) == 0
    out = root / "report" / "g"
    assert report["report"] == str(out / "index.html")
    assert (root / "report" / "g-short" / "index.html").is_file()  # both kept
    assert (out / "index.html").is_file()
    # one figure per metric, every run of the grid on it
    assert set(report["figures"]) == {"g_train_loss.png", "g_loss.png", "g_exact_match.png"}
    assert all((out / f).stat().st_size > 1000 for f in report["figures"])
    # rows in the plan's order (lr 3e-3 first, as declared), not by hash
    assert [(r["bindings"]["train.optimizer.lr"], r["bindings"]["seed"])
            for r in report["runs"]] == [(3e-3, 0), (3e-3, 1), (1e-3, 0), (1e-3, 1)]
    page = (out / "index.html").read_text()
    assert "<table class='sortable'>" in page and "<th title='sort'>train.optimizer.lr</th>" in page
    assert page.count("<tr>") == 5  # the head and four runs
    loss = report["runs"][0]["final"]["loss"]
    assert f"data-v='{loss}'>{loss:.4g}</td>" in page  # rounded, sorted by the full value


def test_the_runs_figure_has_the_learning_curve(tmp_path: Path) -> None:
    from specc.report.curves import metrics_of

    row = {"rows": [{"step": 10, "loss": 1.0}], "train": [{"kind": "train", "step": 5,
                                                             "train_loss": 2.0}]}
    assert metrics_of([row]) == ["train_loss", "loss"]


def test_run_json_prints_the_plans_runs_alone_on_stdout(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.exp"
    spec.write_text(GRID.replace("seed in [0, 1]", "seed in [0]"))
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--json", "--profile", "short"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "experiment g: 2 runs" in captured.err
    assert [r["status"] for r in out["runs"]] == ["finished", "finished"]
    assert all(r["last"]["step"] == 10 and Path(r["path"]).is_dir() for r in out["runs"])
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--profile", "short"]) == 0
    assert "experiment g" in capsys.readouterr().out  # without --json, stdout again


def test_the_store_is_found_from_the_project_not_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Note [Store location]: runs/ in the spec's project wherever the shell is; $SPECC_STORE
    and --store override it; `specc runs` finds the project from the current directory."""
    project = tmp_path / "proj"
    (project / "specs").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    spec = project / "specs" / "g.exp"
    spec.write_text(GRID.replace("seed in [0, 1]", "seed in [0]")
                    .replace("train.optimizer.lr in [3e-3, 1e-3]", "train.optimizer.lr in [3e-3]"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SPECC_STORE", raising=False)
    assert main(["run", str(spec), "--quiet", "--profile", "short"]) == 0
    [metrics] = list((project / "runs" / "g").glob("*/metrics.jsonl"))
    assert not (elsewhere / "runs").exists()
    before = metrics.stat().st_mtime_ns
    monkeypatch.chdir(project)  # another directory, the same store: the run is not retrained
    assert main(["run", "specs/g.exp", "--quiet", "--profile", "short"]) == 0
    assert metrics.stat().st_mtime_ns == before
    assert len(list((project / "runs" / "g").glob("*/manifest.json"))) == 1
    monkeypatch.chdir(project / "specs")
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    monkeypatch.setenv("SPECC_STORE", str(tmp_path / "shared"))
    assert main(["run", str(spec), "--quiet", "--profile", "short"]) == 0
    assert len(list((tmp_path / "shared" / "g").glob("*/manifest.json"))) == 1
    assert main(["report", str(spec), "--profile", "short", "--store",
                 str(project / "runs")]) == 0
    assert (project / "runs" / "report" / "g-short" / "index.html").is_file()
