"""Every shipped spec checks, is fmt-clean and plans; the core stays torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import specc

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("specs/**/*.exp"), *ROOT.glob("examples/**/*.exp")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spec_checks_formats_and_plans(path: Path) -> None:
    rel = path.relative_to(ROOT)
    result = specc.plan(rel)
    assert result.ok, result.render()
    text = path.read_text()
    formatted, _ = specc.format_source(text, str(rel))
    assert formatted == text, f"{rel} is not fmt-clean: run `specc fmt {rel}`"
    assert result.plan is not None
    for ep in result.plan.experiments:
        assert ep.count >= 1
        assert ep.cost().runs == ep.count


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_plan(path: Path) -> None:
    rel = path.relative_to(ROOT)
    if "profile smoke" in path.read_text():
        result = specc.plan(rel, profile="smoke")
        assert result.ok, result.render()


def test_core_verbs_import_no_heavy_library() -> None:
    heavy = ["torch", "transformers", "peft", "optuna", "datasets", "torch_xla"]
    code = (
        "import sys\n"
        "from specc.cli.main import main\n"
        "for argv in (['check', 'specs'], ['fmt', '--check', 'specs'],"
        " ['plan', 'specs/circuit_lora.exp'], ['explain', 'specs/quickstart.exp',"
        " 'train.batch'], ['components'],"
        " ['check', 'examples/plugin/classifier.exp'], ['plan', 'examples/plugin/classifier.exp'],"
        " ['explain', 'examples/plugin/classifier.exp', 'model'],"
        " ['components', 'examples/plugin/classifier.exp']):\n"
        "    import io, contextlib\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(argv) == 0, argv\n"
        f"bad = [m for m in {heavy!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"the core imported {out.stdout.strip()}"


def test_plan_json_has_runs_hashes_and_cost() -> None:
    out = subprocess.run([sys.executable, "-m", "specc.cli.main", "plan",
                          "specs/circuit_lora.exp", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    data = json.loads(out.stdout)
    exp = data["experiments"][0]
    assert len(exp["runs"]) == 12 == exp["cost"]["runs"]
    assert len({r["hash"] for r in exp["runs"]}) == 12
    assert exp["checks"] == [{"text": "params(circuit_aware) <= params(lora)", "passed": True}]
    assert exp["cost"]["flops"] > 0
