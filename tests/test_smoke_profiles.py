"""The smoke profiles of the shipped sweeps run end to end (what CI runs of them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specc.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def _copy_specs(tmp: Path) -> Path:
    """The specs in a project of their own (Note [Store location]: its runs/ is tmp/runs)."""
    specs = tmp / "specs"
    shutil.copytree(ROOT / "specs", specs)
    (tmp / "specc.toml").write_text("")
    return specs


@pytest.mark.slow
def test_circuit_lora_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = _copy_specs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(specs / "circuit_lora.exp"), "--profile", "smoke", "--quiet"]) == 0
    runs = [p for p in (tmp_path / "runs" / "circuit_lora").iterdir() if p.is_dir()]
    assert len(runs) == 12
    assert all(json.loads((r / "manifest.json").read_text())["status"] == "finished"
               for r in runs)
    assert sum((r / "allocation.json").exists() for r in runs) == 3  # the circuit_aware seeds
    assert main(["report", str(specs / "circuit_lora.exp"), "--profile", "smoke", "--out",
                 str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "circuit_lora_circuit.png").exists()


@pytest.mark.slow
def test_circuit_lora_compositional_smoke(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    specs = _copy_specs(tmp_path)
    monkeypatch.chdir(tmp_path)
    spec = specs / "circuit_lora_compositional.exp"
    assert main(["run", str(spec), "--profile", "smoke", "--quiet"]) == 0
    runs = [p for p in (tmp_path / "runs" / "circuit_lora_compositional").iterdir()
            if p.is_dir()]
    assert len(runs) == 9
    unions = [r for r in runs if (r / "circuits" / "union-base.json").exists()]
    assert len(unions) == 3  # the union_aware seeds
    for r in unions:
        alloc = json.loads((r / "allocation.json").read_text())
        assert alloc["subtasks"] == ["add_sub", "mul_div"] and len(alloc["critical_layers"]) == 2
        union = json.loads((r / "circuits" / "union-base.json").read_text())
        assert union["subtasks"] == ["add_sub", "mul_div"]
        # the composite task's own circuit was never discovered for these runs
        assert not (r / "circuits" / "base.json").exists()
        for name in ("add_sub", "mul_div"):
            assert (r / "circuits" / f"subtask-{name}-probe.json").exists()
    composite = [r for r in runs if (r / "circuits" / "probe.json").exists()]
    assert len(composite) == 3


@pytest.mark.slow
def test_cbs_tiny_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = _copy_specs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(specs / "cbs_tiny.exp"), "--profile", "smoke", "--quiet"]) == 0
    out = json.loads((tmp_path / "runs" / "cbs_tiny" / "cbs.json").read_text())
    assert out["results"][0]["table"] and out["tokens_spent"] < out["tokens_full_grid"]


@pytest.mark.slow
def test_lora_hpo_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    specs = _copy_specs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(specs / "lora_hpo.exp"), "--profile", "smoke", "--quiet"]) == 0
    assert (tmp_path / "runs" / "lora_hpo.journal").exists()
    assert "search lora_hpo: 2 complete, 0 pruned, 0 failed" in capsys.readouterr().out
