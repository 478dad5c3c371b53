"""Searches through Optuna: exact budgets, failures classified and retried, workers that die."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from specc.cli.main import main

ROOT = Path(__file__).resolve().parents[1]

SEARCH = """experiment hpo {{
  model base = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
  data task = {data}
  search optuna {{
{params}
    objective = minimize loss(task.test)
    trials = {trials}
    sampler = {sampler}
    pruner = no_pruning
    retry = retries(max = 2, on = ["killed", "oom", "nan"])
  }}
  train {{
    optimizer = {optimizer}
    batch = 16
    steps = {steps}
    eval_every = {eval_every}
  }}
  metrics = [loss]
}}
"""


def write(tmp: Path, **kw: object) -> Path:
    values = dict(data='arithmetic(ops = ["+"], max = 20, train = 200, test = 50)',
                  params="    lr ~ loguniform(1e-4, 1e-2)", trials=3, sampler="random(seed = 0)",
                  optimizer="adamw(lr = lr)", steps=10, eval_every=5)
    values.update(kw)
    path = tmp / "hpo.exp"
    path.write_text(SEARCH.format(**values))
    return path


def study_trials(spec: Path, root: Path, storage: str | None = None) -> list[object]:
    import specc
    from specc.sweeps.worker import Sweep

    result = specc.compile(spec)
    assert result.program is not None
    sweep = Sweep(str(spec), result.program.experiments[0], root, storage=storage, profile=None,
                  backend=None)
    return sweep.trials()


def test_search_runs_the_exact_budget_and_does_not_rerun(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, root = write(tmp_path), tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root)]) == 0
    trials = study_trials(spec, root)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # type: ignore[attr-defined]
    assert (root / "hpo.journal").exists()
    # every trial's run is made by the plan's own function: the store holds those hashes
    import specc
    from specc.compiler import ir
    from specc.compiler.plan import RunMaker

    maker = RunMaker(specc.compile(spec).program.experiments[0])  # type: ignore[union-attr]
    made = {maker.make({k: ir.Const(value=v) for k, v in t.params.items()}).hash  # type: ignore[attr-defined]
            for t in trials}
    assert {d.name for d in (root / "hpo").iterdir() if d.is_dir()} == made
    capsys.readouterr()
    assert main(["run", str(spec), "--root", str(root)]) == 0  # resumes: nothing left to run
    assert "trial" not in capsys.readouterr().out.split("\n", 1)[1].split("search hpo:")[0]
    assert len(study_trials(spec, root)) == 3


def test_raising_and_nan_trials_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_text("".join(json.dumps({"text": f"{i} + 1 = {i + 1}"}) + "\n"
                                                 for i in range(200)))
    spec = write(tmp_path, data="jsonl(path = path)",
                 params='    path ~ choice("good.jsonl", "missing.jsonl")\n'
                        "    lr ~ choice(1e30, 1e-3)",
                 optimizer="sgd(lr = lr, momentum = 0.0)", trials=4, sampler="grid()",
                 steps=10, eval_every=5)
    spec.write_text(spec.read_text().replace("vocab = numbers(0..99)", "vocab = bytes")
                    .replace("context = 16", "context = 32"))
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root)]) == 0
    trials = study_trials(spec, root)
    by = {(t.params["path"], t.params["lr"]): t for t in trials  # type: ignore[attr-defined]
          if not t.user_attrs.get("specc:superseded")}  # type: ignore[attr-defined]
    missing = by[("missing.jsonl", 1e-3)]
    assert missing.state.name == "FAIL"  # type: ignore[attr-defined]
    assert missing.user_attrs["specc:failure"] == "exception"  # type: ignore[attr-defined]
    assert "does not exist" in missing.user_attrs["specc:reason"]  # type: ignore[attr-defined]
    nan = by[("good.jsonl", 1e30)]
    assert nan.user_attrs["specc:failure"] == "nan"  # type: ignore[attr-defined]
    assert "loss became" in nan.user_attrs["specc:reason"]  # type: ignore[attr-defined]
    assert by[("good.jsonl", 1e-3)].state.name == "COMPLETE"  # type: ignore[attr-defined]
    retried = [t for t in trials if t.user_attrs.get("specc:retry_of") is not None]  # type: ignore[attr-defined]
    assert retried and all(t.params["lr"] == 1e30 for t in retried)  # type: ignore[attr-defined]


def _wait_running(spec: Path, root: Path, storage: str | None, proc: subprocess.Popen[bytes],
                  n: int = 1) -> list[object]:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before a trial ran"
        try:
            running = [t for t in study_trials(spec, root, storage)
                       if t.state.name == "RUNNING"  # type: ignore[attr-defined]
                       and t.user_attrs.get("specc:worker")]  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the storage may not exist yet
            running = []
        if len(running) >= n:
            return running
        time.sleep(0.3)
    pytest.fail("no trial started")


def _check_budget(trials: list[object], cap: int, killed: int) -> None:
    numbers = [t.number for t in trials]  # type: ignore[attr-defined]
    assert len(numbers) == len(set(numbers))
    assert not [t for t in trials if t.state.name == "RUNNING"]  # type: ignore[attr-defined]
    counted = [t for t in trials if not t.user_attrs.get("specc:superseded")  # type: ignore[attr-defined]
               and not t.user_attrs.get("specc:over_budget")]  # type: ignore[attr-defined]
    assert len(counted) == cap, [(t.number, t.state.name, t.user_attrs) for t in trials]  # type: ignore[attr-defined]
    assert all(t.state.name == "COMPLETE" for t in counted)  # type: ignore[attr-defined]
    [orig] = [t for t in trials if t.number == killed]  # type: ignore[attr-defined]
    assert orig.state.name == "FAIL" and orig.user_attrs["specc:failure"] == "killed"  # type: ignore[attr-defined]
    retries = [t for t in trials if t.user_attrs.get("specc:retry_of") == killed]  # type: ignore[attr-defined]
    assert len(retries) == 1 and retries[0].params == orig.params  # type: ignore[attr-defined]
    assert retries[0].state.name == "COMPLETE"  # type: ignore[attr-defined]


def _kill_a_worker_mid_trial(tmp_path: Path, storage: str | None) -> None:
    spec, root = write(tmp_path, trials=6, steps=150, eval_every=50), tmp_path / "runs"
    cmd = [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root", str(root),
           "--workers", "3"]
    if storage:
        cmd += ["--storage", storage]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    [victim, *_] = _wait_running(spec, root, storage, proc, n=2)
    os.kill(int(victim.user_attrs["specc:worker"]["pid"]), signal.SIGKILL)  # type: ignore[attr-defined]
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    _check_budget(study_trials(spec, root, storage), 6, victim.number)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_three_journal_workers_one_killed(tmp_path: Path) -> None:
    _kill_a_worker_mid_trial(tmp_path, None)


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 that the test starts and stops itself."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL is not installed")
    base = Path(tempfile.mkdtemp(prefix="specc-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_pg, "initdb", "-D", str(data), "-A", "trust", "-U", "optuna"],
                   check=True, capture_output=True)
    subprocess.run([*as_pg, "pg_ctl", "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                    f"-h 127.0.0.1 -p {port} -k {sock}", "start"], check=True,
                   capture_output=True)
    try:
        subprocess.run([*as_pg, "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "optuna",
                        "optuna"], check=True, capture_output=True)
        yield f"postgresql://optuna@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_pg, "pg_ctl", "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_three_postgres_workers_one_killed(tmp_path: Path, postgres: str) -> None:
    _kill_a_worker_mid_trial(tmp_path, postgres)


@pytest.mark.slow
def test_kill_9_of_specc_run_mid_sweep_then_resume(tmp_path: Path) -> None:
    spec, root = write(tmp_path, trials=4, steps=150, eval_every=50), tmp_path / "runs"
    cmd = [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root", str(root)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    [running] = _wait_running(spec, root, None, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole `specc run`, its trial child included
    proc.wait()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_trials(spec, root)
    _check_budget(trials, 4, running.number)  # type: ignore[attr-defined]
    finished_before = [t for t in trials if t.number < running.number]  # type: ignore[attr-defined]
    assert all(t.state.name == "COMPLETE" for t in finished_before)  # type: ignore[attr-defined]


def test_a_report_on_another_machine_reads_a_postgres_study(
        tmp_path: Path, postgres: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Machine A: `specc worker --max-trials 2` twice (two SLURM array tasks' shares) on a
    PostgreSQL study. Machine B (its own empty store): `specc report --storage URL` shows the
    study's trials."""
    spec, a = write(tmp_path, trials=3), tmp_path / "machine-a"
    for _ in range(2):
        assert main(["worker", str(spec), "--root", str(a), "--storage", postgres,
                     "--max-trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "ran 2 trials" in out and "ran 1 trial" in out  # the budget of 3, shared
    b = tmp_path / "machine-b"
    assert main(["report", str(spec), "--root", str(b), "--storage", postgres]) == 0
    text = capsys.readouterr().out
    assert "search hpo" in text and text.count("COMPLETE") == 3 and "best: trial" in text
    assert (b / "report" / "hpo" / "hpo_history.png").is_file()
