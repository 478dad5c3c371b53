"""Nothing lost, nothing let in: hostile run directories, bad input, damaged files, faults.

Each test names the item of the hardening issue it guards and fails without its fix.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest

import specc
from specc.cli.main import main
from tests.test_runtime import manifest, metrics, run_dirs, spec

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ checkpoints (1, 2, 10)

@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished tiny run with kept checkpoints at steps 10 and 20 (and its spec)."""
    tmp = tmp_path_factory.mktemp("finished")
    s = spec(tmp, budget="steps = 30")
    assert main(["run", str(s), "--root", str(tmp / "runs"), "--quiet"]) == 0
    return s, tmp / "runs"


def _copy(finished: tuple[Path, Path], tmp: Path) -> tuple[Path, Path, Path]:
    """A copy of the finished run, marked as killed mid-run (so a rerun resumes)."""
    s, root = finished
    copy = tmp / "runs"
    shutil.copytree(root, copy)
    [run] = run_dirs(copy)
    m = manifest(run)
    m["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(m))
    return s, copy, run


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def _damage(ckpt: Path, how: str, marker: Path) -> None:
    import torch

    state = ckpt / "state.pt"
    if how == "tampered":  # a pickle that runs a shell command when loaded unsafely
        torch.save({"model": _Evil(marker), "optimizer": {}, "step": 20}, state)
        (ckpt / "checksums.json").unlink()  # an attacker rewrites what they like
    elif how == "truncated":
        data = state.read_bytes()
        state.write_bytes(data[: len(data) // 2])
    elif how == "flipped":  # mantissa bits of a weight: loads fine, only the checksum knows
        data = bytearray(state.read_bytes())
        data[len(data) // 2] ^= 0x01
        state.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["tampered", "truncated", "flipped"])
def test_a_damaged_checkpoint_is_reported_and_the_previous_one_used(
        finished: tuple[Path, Path], tmp_path: Path, how: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    s, root, run = _copy(finished, tmp_path)
    expected = metrics(run)
    latest = run / "checkpoints" / "step-00000020"
    assert latest.is_dir() and (latest / "checksums.json").exists()
    marker = tmp_path / "pwned"
    _damage(latest, how, marker)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    out = capsys.readouterr()
    assert not marker.exists(), "loading a checkpoint ran code"
    assert "is damaged" in out.err and "resumed at step 10" in out.out
    assert (run / "checkpoints" / "damaged-step-00000020").is_dir()
    assert manifest(run)["status"] == "finished"
    # Retrained from step 10: the same numbers as the run that was never damaged.
    assert [r["loss"] for r in metrics(run)] == [r["loss"] for r in expected]


def _trainer(run: Path) -> object:
    from specc.runtime.loop import Trainer

    return Trainer({"train": {}}, run, SimpleNamespace(is_main=True), spans={}, base_dir=run,
                   store_root=run)


def test_latest_pointing_outside_the_run_is_ignored(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "root" / "exp" / "abc"
    ckpts = run / "checkpoints"
    (ckpts / "step-00000010").mkdir(parents=True)
    (ckpts / "step-00000010" / "state.pt").write_bytes(b"x")
    evil = tmp_path / "elsewhere" / "evil"
    evil.mkdir(parents=True)
    (evil / "state.pt").write_bytes(b"x")
    (ckpts / "LATEST").write_text("../../../../elsewhere/evil")
    (ckpts / "step-00000099").symlink_to(evil)  # a link leading out is no checkpoint either
    trainer = _trainer(run)
    assert trainer.checkpoints() == [ckpts / "step-00000010"]  # type: ignore[attr-defined]
    assert "points outside" in capsys.readouterr().err


def test_checkpoint_files_are_confined() -> None:
    from specc.store.files import confined

    root = Path("/tmp/specc-root")
    assert confined(root, "step-1") == root.resolve() / "step-1"
    for bad in ("../x", "/etc/passwd", "a/../../x", "step-1/../../.."):
        assert confined(root, bad) is None, bad


# ------------------------------------------------------------------ faults (11, 12, 15, 16)

def test_disk_full_during_a_checkpoint_fails_clearly_and_a_rerun_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    root, s = tmp_path / "runs", spec(tmp_path, budget="steps = 30")
    real_save = torch.save
    calls = {"n": 0}

    def full(obj: object, f: object, *a: object, **k: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 20) finds the disk full
            Path(str(f)).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    [run] = run_dirs(root)
    assert "no space left on the device writing" in err and "state.pt" in err
    assert "needs about" in err and "[disk-full]" in err
    m = manifest(run)
    assert m["status"] == "failed" and "no space left" in str(m["reason"])
    assert not list((run / "checkpoints").glob(".tmp-*")), "temporary files were left"
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    assert "resumed at step 10" in capsys.readouterr().out
    assert [r["step"] for r in metrics(run)] == [10, 20, 30]


def test_disk_full_in_the_metrics_log_keeps_whole_rows(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from specc.store.files import DiskFull
    from specc.store.runs import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"step": 1})
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=r"metrics\.jsonl"):
        log.append({"step": 2, "loss": 1.0})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert log.rows() == [{"step": 1}]


def test_checkpoints_follow_their_own_schedule_without_evaluations(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 30", eval_every=0,
             extra="    checkpoint_every = 7\n")
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [run] = run_dirs(root)
    kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert kept == ["step-00000021", "step-00000028"]


def test_without_any_schedule_checkpoints_are_timed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from specc.runtime import loop

    monkeypatch.setattr(loop, "CHECKPOINT_SECONDS", 0.0)  # every step, for the test
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 12", eval_every=0)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    [run] = run_dirs(root)
    kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert kept == ["step-00000010", "step-00000011"]


def _start(s: Path, root: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "specc.cli.main", "run", str(s), "--root",
                             str(root), "--quiet", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path_glob: str, root: Path, proc: subprocess.Popen[str]) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        found = sorted(root.glob(path_glob))
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"{path_glob} never appeared")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 2000", eval_every=0, extra="    checkpoint_every = 5\n")
    proc = _start(s, root)
    _wait_for("tiny/*/checkpoints/LATEST", root, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [run] = run_dirs(root)
    m = manifest(run)
    assert m["status"] == "interrupted" and sig.name in str(m["reason"])
    assert (run / "checkpoints" / "LATEST").read_text() == f"step-{int(m['step']):08d}"


@pytest.mark.slow
def test_force_keeps_mutual_exclusion(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 2000", eval_every=0, extra="    checkpoint_every = 5\n")
    [run_hash] = [r.hash for r in specc.plan(s).plan.runs()]  # type: ignore[union-attr]
    run = root / "tiny" / run_hash
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"status": "finished", "hash": run_hash}))
    proc = _start(s, root, "--force")
    try:
        _wait_for("tiny/*/checkpoints/LATEST", root, proc)
        with (run / ".lock").open("a") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a second run would wait here
    finally:
        proc.kill()
        proc.wait()


def test_force_on_a_symlinked_run_directory_starts_afresh(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    root = tmp_path / "runs"
    s = spec(tmp_path, budget="steps = 10")
    [run_hash] = [r.hash for r in specc.plan(s).plan.runs()]  # type: ignore[union-attr]
    elsewhere = tmp_path / "big-disk" / run_hash
    elsewhere.mkdir(parents=True)
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / run_hash).symlink_to(elsewhere)
    assert main(["run", str(s), "--root", str(root), "--quiet"]) == 0
    (elsewhere / "old-result.txt").write_text("stale")
    assert main(["run", str(s), "--root", str(root), "--quiet", "--force"]) == 0
    assert (root / "tiny" / run_hash).is_symlink()
    assert not (elsewhere / "old-result.txt").exists()
    assert manifest(elsewhere)["status"] == "finished"
    assert "resumed" not in capsys.readouterr().out


# ------------------------------------------------------------------ the index (13)

def test_a_corrupt_index_is_rebuilt_and_a_bad_manifest_skipped(
        finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    shutil.copytree(finished[1], root)
    (root / "index.sqlite").write_bytes(b"this is not a database" * 100)
    bad = root / "tiny" / "0000000000000000"
    bad.mkdir()
    (bad / "manifest.json").write_text('["not", "an", "object"]')
    assert main(["runs", "--root", str(root), "--json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert [r["hash"] for r in rows] == [run_dirs(finished[1])[0].name]
    assert "damaged" in out.err and "skipping" in out.err


# ------------------------------------------------------------------ trials (14)

def test_a_chatty_trial_never_blocks_its_worker(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial that prints far more than a pipe holds (64 KiB) finishes, its output in its log."""
    from specc.sweeps import worker
    from tests.test_sweeps import write

    s = write(tmp_path, trials=1)
    result = specc.compile(s)
    sweep = worker.Sweep(str(s), result.program.experiments[0], tmp_path / "runs",  # type: ignore[union-attr]
                         storage=None, profile=None, backend=None)
    real = worker.launch.start

    def chatty(target: str, args: tuple[str, ...], log_path: Path) -> object:
        return real("test_trials.chatty_trial", args, log_path)  # prints far past 64 KiB

    monkeypatch.setattr(worker.launch, "start", chatty)
    said: list[str] = []
    t0 = time.time()
    sweep.work(log=said.append)
    assert time.time() - t0 < 60
    [log] = (tmp_path / "runs" / "hpo").glob("*/trial-0.log")
    assert log.stat().st_size > 200_000
    text = "\n".join(said)
    assert "failed (exception: boom)" in text and "evaluation line 03999" in text


# ------------------------------------------------------------------ imports and files (3, 8)

def _check(tmp: Path, text: str | bytes, name: str = "a.exp") -> tuple[int, str]:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    proc = subprocess.run([sys.executable, "-m", "specc.cli.main", "check", str(path)],
                          cwd=tmp, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SPECC_PLANTED_SECRET="hunter2-planted"))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "../../../../etc/passwd",
                                    "/dev/zero", "../outside.exp", "notes.txt", "link.exp"])
def test_import_reads_only_spec_files_inside_the_project(tmp_path: Path, target: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (tmp_path / "outside.exp").write_text("let x = 1\n")
    (project / "notes.txt").write_text("let y = 2\n")
    (project / "link.exp").symlink_to("/proc/self/environ")
    code, out = _check(project, f'import "{target}"\n'
                                "experiment e { model m = gpt2(vocab = bytes) }\n")
    assert code == 1, out
    assert "[import-refused]" in out
    assert "hunter2-planted" not in out and "root:" not in out


def test_import_inside_the_project_still_works(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "models.exp").write_text("model tiny = gpt2(vocab = bytes)\n")
    (tmp_path / "specs").mkdir()
    code, out = _check(tmp_path / "specs", 'import "../lib/models.exp"\n'
                                           "experiment e { model m = tiny }\n")
    assert code == 0, out


def test_a_file_that_is_not_utf8_is_a_located_diagnostic(tmp_path: Path) -> None:
    data = b'experiment e {\n  model m = gpt2(vocab = bytes)  # caf\xe9\n}\n'
    code, out = _check(tmp_path, data)
    assert code == 1 and "a.exp:2:39: error:" in out and "[source-not-utf8]" in out
    (tmp_path / "a.exp").write_bytes(data)
    [d] = specc.check(tmp_path / "a.exp")
    assert d.code == "source-not-utf8" and (d.span.line, d.span.col) == (2, 39)
    fmt = subprocess.run([sys.executable, "-m", "specc.cli.main", "fmt", str(tmp_path / "a.exp")],
                         capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 1 and "[source-not-utf8]" in fmt.stderr


def test_a_nul_character_is_a_located_diagnostic_not_a_crash(tmp_path: Path) -> None:
    """Found by the mutation property test: a NUL inside an import's path (or a data path)
    reached the OS, which raised ValueError (an internal error)."""
    for data in (b'import "\x00t.exp"\nexperiment e { model m = gpt2(vocab = bytes) }\n',
                 b'experiment e {\n  model m = gpt2(vocab = bytes)\n'
                 b'  data d = text_files("\x00c/*.txt", tokenizer = bytes)\n}\n'):
        (tmp_path / "a.exp").write_bytes(data)
        [d] = specc.check(tmp_path / "a.exp")
        line = data.split(b"\x00")[0].count(b"\n") + 1
        assert d.code == "syntax-unexpected-char" and d.span.line == line, d
        run = subprocess.run([sys.executable, "-m", "specc.cli.main", "run",
                              str(tmp_path / "a.exp"), "--root", str(tmp_path / "runs")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr


def test_a_device_or_a_huge_file_is_refused(tmp_path: Path) -> None:
    [d] = specc.check(Path("/dev/zero"))
    assert d.code == "not-a-file"
    big = tmp_path / "big.exp"
    big.write_bytes(b"#" * (2 << 20))
    [d] = specc.check(big)
    assert d.code == "source-too-large"


def test_a_missing_path_is_reported_as_a_missing_file() -> None:
    [d] = specc.check("specs/quickstrat.exp")
    assert d.code == "io-error" and d.span.file == "specs/quickstrat.exp"


# ------------------------------------------------------------------ report and storage (4, 5)

def test_report_escapes_manifest_values_and_never_writes_outside(
        finished: tuple[Path, Path], tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(finished[1], root)
    [run] = run_dirs(root)
    m = manifest(run)
    m.update(hash="../../../escaped", name="<script>alert(1)</script>",
             device="<img src=x onerror=alert(1)>", params={"trainable": "<b>"})
    (run / "manifest.json").write_text(json.dumps(m))
    out = tmp_path / "report"
    assert main(["report", str(run), "--root", str(root), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page
    assert page.count("<script>") == 1  # the table's own sorting, nothing a manifest said
    assert "&lt;script&gt;" in page
    written = {p.resolve() for p in tmp_path.rglob("*.png")}
    assert written and all(out.resolve() in p.parents for p in written)


def test_storage_urls_never_show_a_password() -> None:
    from specc.store.urls import redact

    url = "postgresql://ann:s3cr%40t@db.example:5432/specc"
    assert redact(url) == "postgresql://ann:***@db.example:5432/specc"
    assert "s3cr" not in redact(f"could not connect to {url}", url)
    assert redact("runs/x.journal") == "runs/x.journal"


@pytest.mark.parametrize("storage", ["/etc/x.journal", "../up.journal", "sqlite:///x.db",
                                     "runs/study.txt", "redis://h/0"])
def test_a_spec_names_only_a_journal_below_it_or_a_database(tmp_path: Path, storage: str) -> None:
    from tests.test_sweeps import write

    s = write(tmp_path)
    s.write_text(s.read_text().replace("    trials =", f'    storage = "{storage}"\n    trials ='))
    diags = specc.check(s)
    assert [d.code for d in diags] == ["invalid-value"], diags
    assert "storage" in diags[0].message


def test_report_never_creates_a_storage(tmp_path: Path) -> None:
    from tests.test_sweeps import write

    s = write(tmp_path)
    root = tmp_path / "runs"
    # nothing ran: an empty report is exit 1 saying why, and no study was made to find out
    assert main(["report", str(s), "--root", str(root), "--out", str(tmp_path / "r")]) == 1
    assert not list(tmp_path.rglob("*.journal")) and not list(tmp_path.rglob("*.db"))


# ------------------------------------------------------------------ bounded work (6, 7, 9)

def _bounded(fn: object, seconds: float = 20.0, megabytes: float = 200.0) -> object:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        value = fn()  # type: ignore[operator]
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes, f"peaked at {peak:.0f} MiB"
    return value


BIG = """experiment e {
  model m = gpt2(layers = 1, heads = 2, width = 16, vocab = bytes)
  train { steps = 10 }
  sweep grid {
    seed in 0..1000000000000000000
    train.batch in [8, 16] when seed > 3
  }
}
"""


def test_a_huge_range_axis_plans_lazily(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.exp"
    path.write_text(BIG)

    def plan() -> object:
        result = specc.plan(path)
        [ep] = result.plan.experiments  # type: ignore[union-attr]
        runs = list(itertools.islice(ep.runs(), 10))
        return ep, runs, ep.cost()

    ep, runs, cost = _bounded(plan)  # type: ignore[misc]
    assert cost.runs == ep.count and cost.steps == 10 * ep.count
    assert ep.count == 2 * 10**18 + 2 and not ep.count_exact
    assert len({r.hash for r in runs}) == 10
    assert _bounded(lambda: main(["plan", str(path)])) == 0
    assert "at most 2,000,000,000,000,000,002 runs" in capsys.readouterr().out


def test_run_refuses_a_grid_beyond_the_limit(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.exp"
    path.write_text(BIG)
    code = _bounded(lambda: main(["run", str(path), "--root", str(tmp_path / "runs")]))
    assert code == 1
    err = capsys.readouterr().err
    assert "[too-many-runs]" in err and "--max-runs" in err
    assert not (tmp_path / "runs" / "e").exists()


def test_a_chain_of_checkpoints_plans_in_linear_time(tmp_path: Path) -> None:
    parts = ["experiment e0 { model m = gpt2(layers = 1, heads = 2, width = 16, vocab = bytes)"
             " train { steps = 1 } }"]
    parts += [f"experiment e{i} {{ model m = checkpoint(e{i - 1}) train {{ steps = 1 }} }}"
              for i in range(1, 12)]
    path = tmp_path / "chain.exp"
    path.write_text("\n".join(parts))
    result = _bounded(lambda: specc.plan(path), seconds=15)
    assert result.ok  # type: ignore[attr-defined]


def test_checkpoint_and_let_cycles_are_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "cycle.exp"
    path.write_text("experiment a { model m = checkpoint(b) }\n"
                    "experiment b { model m = checkpoint(a) }\n"
                    "let x = y\nlet y = x + 1\n"
                    "experiment c { model m = gpt2(vocab = bytes, layers = x) }\n")
    codes = sorted(d.code for d in specc.check(path))
    assert codes == ["checkpoint-cycle", "let-cycle"]
    run = subprocess.run([sys.executable, "-m", "specc.cli.main", "run", str(path), "--root",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "[checkpoint-cycle]" in run.stderr


DEEP = "experiment e {{ model m = gpt2(vocab = bytes)\n  seed = {} }}"


@pytest.mark.parametrize("text,code", [
    ("f(" * 300 + "1" + ")" * 300, "nesting-too-deep"),
    ("[" * 400 + "1" + "]" * 400, "nesting-too-deep"),
    ("-" * 600 + "1", "nesting-too-deep"),
    ("+".join(["1"] * 600), "nesting-too-deep"),
    ("1e1000000", "number-too-large"),
    ("1" * 5000, "number-too-large"),
    ("1e200 * 1e200", "number-too-large"),
])
def test_deep_nesting_and_huge_numbers_are_located_diagnostics(text: str, code: str) -> None:
    result = specc.plan(DEEP.format(text))
    assert [d.code for d in result.diagnostics] == [code]
    assert result.diagnostics[0].span.line == 2
    _, diags = specc.format_source(DEEP.format(text))
    assert [d.code for d in diags] == ([code] if code != "number-too-large"
                                       or "*" not in text else [])


@pytest.mark.parametrize("field", ["layers = 1e999999", "layers = 10 * 1e300"])
def test_params_of_an_absurd_model_is_a_diagnostic(field: str) -> None:
    src = f"experiment e {{ model m = gpt2(vocab = bytes, {field}) }}"
    assert [d.code for d in specc.check(src)] == ["number-too-large"]


@pytest.mark.parametrize("setting", ["optimizer = adamw(lr = 1e300 * 1e300)",
                                     "optimizer = adamw(lr = 1e300 * 1e300 - 1e300 * 1e300)",
                                     "grad_clip = 1e300 * 10"])
def test_non_finite_hyperparameters_are_refused(setting: str) -> None:
    src = f"experiment e {{ model m = gpt2(vocab = bytes)\n  train {{ {setting} }} }}"
    codes = [d.code for d in specc.check(src)]
    assert codes and set(codes) <= {"number-too-large", "out-of-range"}, codes
