"""Golden cases: check/*.exp -> .out (diagnostics), fmt/*.exp -> .out, plan/*.exp -> .plan."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import specc
from specc.cli.main import main

CASES = Path(__file__).parent / "cases"


def _cases(kind: str) -> list[Path]:
    return sorted((CASES / kind).glob("*.exp"))


def _golden(path: Path, actual: str, update: bool) -> None:
    if update or not path.exists():
        path.write_text(actual)
        if not update:
            pytest.fail(f"wrote missing golden {path}; review it and rerun")
    assert actual == path.read_text(), f"golden {path} differs (rerun with --update-goldens)"


@pytest.mark.parametrize("case", _cases("check"), ids=lambda p: p.stem)
def test_check_golden(case: Path, update_goldens: bool) -> None:
    rel = case.relative_to(Path.cwd())
    result = specc.plan(rel)
    assert not result.ok, "a check case must contain at least one mistake"
    assert all(d.span.file for d in result.diagnostics)
    _golden(case.with_suffix(".out"), result.render() + "\n", update_goldens)


@pytest.mark.parametrize("case", _cases("fmt"), ids=lambda p: p.stem)
def test_fmt_golden(case: Path, update_goldens: bool) -> None:
    text = case.read_text()
    out, diags = specc.format_source(text, case.name)
    assert out is not None, diags
    _golden(case.with_suffix(".out"), out, update_goldens)
    again, _ = specc.format_source(out, case.name)
    assert again == out, "fmt is not idempotent"
    before = specc.compile(text)
    after = specc.compile(out)
    if before.program is not None:
        assert after.program is not None
        assert specc.ir.content_hash(before.program) == specc.ir.content_hash(after.program)


@pytest.mark.parametrize("case", _cases("plan"), ids=lambda p: p.stem)
def test_plan_golden(case: Path, update_goldens: bool) -> None:
    rel = str(case.relative_to(Path.cwd()))
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["plan", rel, "--json"])
    assert code == 0
    data = json.loads(buf.getvalue())
    _golden(case.with_suffix(".plan"), json.dumps(data, indent=2, sort_keys=True) + "\n",
            update_goldens)
