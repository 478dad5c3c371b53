"""docs/language.md matches the grammar, the codes and the catalogue; doctests run."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from specc import codes
from specc.catalogue import reference
from specc.components import tasks
from specc.lang import parser as parser_module
from specc.lang import source
from specc.report import html
from specc.store import files, urls

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "language.md").read_text()


def test_component_reference_is_current() -> None:
    start, end = DOC.index(reference.BEGIN), DOC.index(reference.END) + len(reference.END)
    assert DOC[start:end] == reference.render(), (
        "docs/language.md is stale: regenerate with python -m specc.catalogue.reference")


def test_every_keyword_of_the_grammar_is_documented() -> None:
    grammar = (ROOT / "specc" / "lang" / "grammar.lark").read_text()
    keywords = set(re.findall(r'"([a-z]+)"', grammar))
    missing = sorted(k for k in keywords if f" {k}" not in DOC and f"`{k}" not in DOC)
    assert not missing, f"keywords missing from docs/language.md: {missing}"


def test_every_code_is_documented() -> None:
    for code in codes.MESSAGES:
        if code.startswith("syntax-"):
            continue
        assert f"`{code}`" in DOC, code


@pytest.mark.parametrize("module", [codes, parser_module, source, files, urls, tasks, html],
                         ids=lambda m: m.__name__)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0


def test_readme_python_blocks_run_as_written(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md shows the Python API"
    monkeypatch.chdir(ROOT)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "circuit_lora" in capsys.readouterr().out
