"""Shell completion (argcomplete): `specc completion SHELL` prints a script for bash, zsh and
fish; completing asks specc itself, which offers spec paths, a spec's profiles and
experiments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECC = [sys.executable, "-m", "specc.cli.main"]


def _complete(line: str, cwd: Path, tmp: Path) -> list[str]:
    """What the shell script gets back for ``line`` (argcomplete's protocol, with its file
    variant of the output channel)."""
    out = tmp / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line,
               COMP_POINT=str(len(line)), _ARGCOMPLETE_SHELL="bash",
               _ARGCOMPLETE_STDOUT_FILENAME=str(out))
    proc = subprocess.run(SPECC, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in out.read_text().split("\n") if w.strip()]


def test_completion_offers_spec_paths_profiles_and_experiments(tmp_path: Path) -> None:
    assert _complete("specc run specs/quick", ROOT, tmp_path) == ["specs/quickstart.exp"]
    assert _complete("specc run specs/quickstart.exp --profile ", ROOT, tmp_path) == ["smoke"]
    assert _complete("specc plan specs/quickstart.exp --profile sm", ROOT, tmp_path) == ["smoke"]
    experiments = _complete("specc run specs/quickstart.exp --experiment q", ROOT, tmp_path)
    assert experiments == ["quickstart"]
    assert "--tracker" in _complete("specc run specs/quickstart.exp --tr", ROOT, tmp_path)
    assert set(_complete("specc ch", ROOT, tmp_path)) == {"check"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(shell: str) -> None:
    out = subprocess.run([*SPECC, "completion", shell], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0 and "specc" in out.stdout
    if shell == "bash":  # the script loads and registers the command
        bash = subprocess.run(["bash", "-c", "source /dev/stdin; complete -p specc"],
                              input=out.stdout, capture_output=True, text=True)
        assert bash.returncode == 0 and "specc" in bash.stdout, bash.stderr
    if shell == "fish":
        assert "complete" in out.stdout and "--command specc" in out.stdout
