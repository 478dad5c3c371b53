"""The command line: exit codes, JSON diagnostics, fmt safety, explain, components."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from specc.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "specc.cli.main", *argv], cwd=cwd,
                          capture_output=True, text=True)


def test_check_ok_and_exit_codes(tmp_path: Path) -> None:
    assert run("check", "specs").returncode == 0
    bad = tmp_path / "bad.exp"
    bad.write_text("experiment e {\n  model m = gtp2(vocab = bytes)\n}\n")
    r = run("check", str(bad))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{bad}:2:13: error: unknown model \"gtp2\"  [unknown-name]" in r.stderr
    assert 'help: did you mean "gpt2"?' in r.stderr
    assert run("check").returncode == 2  # usage
    assert run("frobnicate").returncode == 2


def test_check_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.exp"
    bad.write_text("experiment e {\n  model m = gpt2(layers = 0, vocab = bytes)\n}\n")
    r = run("check", "--json", str(bad))
    assert r.returncode == 1
    [d] = json.loads(r.stdout)
    assert d["file"] == str(bad) and d["line"] == 2 and d["col"] == 27
    assert d["code"] == "out-of-range" and d["end"] == {"line": 2, "col": 28}
    assert set(d) >= {"file", "line", "col", "end", "code", "message", "help"}


def test_missing_file_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    r = run("check", str(tmp_path / "nope.exp"))
    assert r.returncode == 1 and "io-error" in r.stderr and "Traceback" not in r.stderr


def test_check_backend_override() -> None:
    r = run("check", "--backend", "xla", "tests/cases/check/backend_xla.exp")
    assert r.returncode == 1 and "backend-unsupported" in r.stderr
    r = run("check", "--backend", "tpu", "specs/quickstart.exp")
    assert r.returncode == 1 and 'unknown backend "tpu"' in r.stderr


def test_xla_lowering_fixes_the_shape_policy_in_the_plan() -> None:
    r = run("explain", "specs/quickstart.exp", "train.shapes", "--backend", "xla")
    assert r.returncode == 0 and "= \"fixed\"" in r.stdout
    assert "from: backend xla needs static shapes" in r.stdout
    r = run("explain", "specs/quickstart.exp", "train.drop_last", "--backend", "xla")
    assert "= true" in r.stdout
    assert "= \"auto\"" in run("explain", "specs/quickstart.exp", "train.shapes").stdout
    xla = json.loads(run("plan", "--json", "--backend", "xla", "specs/quickstart.exp").stdout
                     .splitlines()[0])
    cpu = json.loads(run("plan", "--json", "specs/quickstart.exp").stdout.splitlines()[0])
    assert xla != cpu  # the XLA run is a different run (its own hash and directory)


def test_run_on_xla_without_its_environment_says_how_to_get_it(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch_xla is installed here")
    r = run("run", "specs/quickstart.exp", "--backend", "xla", "--profile", "smoke", "--root",
            str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "the xla backend is not available" in r.stderr
    assert "backends/xla-env.sh" in r.stderr


def test_fmt_writes_and_checks(tmp_path: Path) -> None:
    f = tmp_path / "x.exp"
    f.write_text("experiment e{model m=gpt2(vocab=bytes) # c\n}\n")
    assert run("fmt", "--check", str(f)).returncode == 1
    assert run("fmt", str(f)).returncode == 0
    assert f.read_text() == "experiment e {\n  model m = gpt2(vocab = bytes)  # c\n}\n"
    assert run("fmt", "--check", str(f)).returncode == 0


def test_fmt_refuses_to_write_a_broken_file(tmp_path: Path) -> None:
    f = tmp_path / "x.exp"
    f.write_text("experiment e {\n")
    r = run("fmt", str(f))
    assert r.returncode == 1 and f.read_text() == "experiment e {\n"


def test_fmt_refuses_when_meaning_would_change(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from specc.lang import printer

    f = tmp_path / "x.exp"
    f.write_text("let a = 1\n")
    monkeypatch.setattr(printer.Printer, "module", lambda self, m: "let a = 2\n")
    assert main(["fmt", str(f)]) == 1
    assert f.read_text() == "let a = 1\n"


def test_plan_profile_and_unknown_profile() -> None:
    r = run("plan", "specs/quickstart.exp", "--profile", "smoke")
    assert r.returncode == 0 and "20 steps" in r.stdout
    r = run("plan", "specs/quickstart.exp", "--profile", "smok")
    assert r.returncode == 1 and 'did you mean "smoke"?' in r.stderr


def test_plan_of_a_search_shows_the_space() -> None:
    r = run("plan", "specs/lora_hpo.exp")
    assert r.returncode == 0
    assert "optuna, 40 runs" in r.stdout and "loguniform" in r.stdout


def test_explain_says_where_values_come_from() -> None:
    r = run("explain", "specs/quickstart.exp", "quickstart.train.batch")
    assert r.returncode == 0 and "specs/quickstart.exp:11:5" in r.stdout
    r = run("explain", "specs/quickstart.exp", "train.steps", "--profile", "smoke")
    assert "= 20" in r.stdout and "profile smoke" in r.stdout
    r = run("explain", "specs/quickstart.exp", "train.grad_clip")
    assert "from: default 1.0" in r.stdout
    r = run("explain", "specs/quickstart.exp", "train.optimizer.eps")
    assert "default of adamw(eps)" in r.stdout
    r = run("explain", "specs/circuit_lora.exp", "base")
    assert "checkpoint" in r.stdout
    r = run("explain", "specs/lora_hpo.exp", "base")  # imported spec
    assert r.returncode == 0
    r = run("explain", "specs/quickstart.exp", "train.bach")
    assert r.returncode == 2 and "did you mean" in r.stderr


def test_components_lists_the_catalogue() -> None:
    r = run("components", "--json")
    data = json.loads(r.stdout)
    names = {c["name"] for c in data}
    assert {"gpt2", "pythia", "llama", "lora", "adalora", "circuit_lora", "random_layers_lora",
            "eap_ig", "tpe", "median", "cbs_curve", "zipf_ngrams", "numbers"} <= names
    assert all(c["doc"] for c in data)
    assert all(p["doc"] or p["name"] in ("train", "test") for c in data for p in c["params"])


def test_internal_error_exit_code(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from specc.cli import commands

    def boom(args: object) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(commands, "cmd_check", boom)
    assert main(["check", "specs/quickstart.exp"]) == 70
    assert "internal error" in capsys.readouterr().err
