"""The examples that embed the compiler API run and do what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_budget_example() -> None:
    specs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("specs/*.exp"))
    ok = subprocess.run([sys.executable, "examples/sweep_budget.py", *specs], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "circuit_lora" in ok.stdout and "cbs_tiny" in ok.stdout
    over = subprocess.run([sys.executable, "examples/sweep_budget.py", "specs/cbs_tiny.exp",
                           "--max-flops", "1e9"], cwd=ROOT, capture_output=True, text=True)
    assert over.returncode == 1 and "OVER BUDGET" in over.stdout


def test_api_returns_diagnostics_instead_of_raising() -> None:
    import specc

    diags = specc.check("experiment e { model m = gpt2(vocab = bytes, layers = -1) }")
    assert [d.code for d in diags] == ["out-of-range"]
    module, errors = specc.parse("experiment {")
    assert module is None and errors[0].code.startswith("syntax-")
    result = specc.compile("experiment e { model m = gpt2(vocab = bytes) }")
    assert result.ok and result.program is not None
    assert result.program.experiments[0].field("train.batch") == specc.ir.Const(value=32)
    text, _ = specc.format_source("let  a=1")
    assert text == "let a = 1\n"
