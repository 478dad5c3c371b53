"""The built wheel (distribution specc-exp, import package and command specc): core-only it
checks specs and says what to install for a run; with the torch extra's libraries present it
runs the quickstart from any directory."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [whl] = out.glob("*.whl")
    return whl


def _venv(where: Path, wheel: Path, *, deps: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run([*pip, str(wheel)] if deps else [*pip, "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return where / "bin" / "specc"


def test_the_wheel_is_specc_exp_with_everything_a_run_reads(wheel: Path) -> None:
    assert wheel.name.startswith("specc_exp-")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "specc/lang/grammar.lark" in names
    assert {"specc/components/trackers.py", "specc_torch/backend.py"} <= names
    [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Name: specc-exp" in text and "Provides-Extra: trackers" in text
    [eps] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "specc = specc.cli.main:main" in zipfile.ZipFile(wheel).read(eps).decode()


def test_core_only_checks_and_gives_the_install_line_for_a_run(wheel: Path,
                                                                tmp_path: Path) -> None:
    specc = _venv(tmp_path / "core", wheel, deps=True)  # lark, attrs, argcomplete only
    spec = ROOT / "specs" / "quickstart.exp"
    checked = subprocess.run([str(specc), "check", str(spec)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
    ran = subprocess.run([str(specc), "run", str(spec), "--root", str(tmp_path / "runs")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 1, ran.stderr
    assert "pip install 'specc-exp[torch]'" in ran.stderr and "internal error" not in ran.stderr


def test_the_wheel_runs_the_quickstart_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    """The wheel's specc, with the torch extra's libraries taken from this environment (a
    path entry: this environment's own specc is not imported)."""
    specc = _venv(tmp_path / "full", wheel, deps=False)
    site = Path(subprocess.run([str(tmp_path / "full" / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = tmp_path / "elsewhere"
    where.mkdir()
    ran = subprocess.run([str(specc), "run", str(ROOT / "specs" / "quickstart.exp"),
                          "--profile", "smoke", "--root", "store"], cwd=where,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert list((where / "store" / "quickstart").glob("*/final/model/tokenizer.json"))
    origin = subprocess.run([str(tmp_path / "full" / "bin" / "python"), "-c",
                             "import specc; print(specc.__file__)"], capture_output=True,
                            text=True, check=True, cwd=where).stdout
    assert str(site) in origin
