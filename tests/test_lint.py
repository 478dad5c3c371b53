"""ruff is part of the test suite, so CI keeps the code to the project's style."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is installed by requirements/dev.txt"
    out = subprocess.run([ruff, "check", "specc", "backends", "tests", "benchmarks", "examples"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_core_size_is_visible() -> None:
    """Print the size of the compiler core (a number for review, not a budget)."""
    for part in ("specc/lang", "specc/compiler", "specc/catalogue"):
        lines = sum(len(p.read_text().splitlines()) for p in (ROOT / part).rglob("*.py"))
        print(f"{part}: {lines} lines")
        assert lines > 0
