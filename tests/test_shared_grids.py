"""Grids are shared work (Note [Shared grids]): concurrent `specc run`s, `workers = N` and
`--shard i/n` train each run exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import specc
from specc.cli.main import main
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]

GRID = """experiment g {{
  model m = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+"], max = 20, train = 200, test = 50)
  train {{ optimizer = adamw(lr = 1e-3); batch = 16; steps = {steps}; eval_every = {steps} }}
  metrics = [loss]
  sweep grid {{
    seed in [0, 1, 2, 3, 4, 5]
{extra}  }}
}}
"""


def _spec(tmp: Path, steps: int = 30, extra: str = "") -> Path:
    path = tmp / "g.exp"
    path.write_text(GRID.format(steps=steps, extra=extra))
    return path


def _manifests(root: Path) -> list[dict[str, object]]:
    return [json.loads(m.read_text()) for m in sorted(root.glob("g/*/manifest.json"))]


def _rows(root: Path) -> list[int]:
    return [len(MetricsLog(d / "metrics.jsonl").rows()) for d in sorted(root.glob("g/*"))
            if (d / "metrics.jsonl").exists()]


def test_two_runs_on_one_store_share_the_grid(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path, steps=200), tmp_path / "runs"
    cmd = [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root", str(root),
           "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two processes on the cores: one thread each
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    manifests = _manifests(root)
    assert len(manifests) == 6 and all(m["status"] == "finished" for m in manifests)
    assert len({m["pid"] for m in manifests}) == 2, "both processes trained runs"
    assert _rows(root) == [1] * 6, "every run was trained once (one evaluation row each)"
    planned = {r.hash for r in specc.plan(spec).plan.runs()}  # type: ignore[union-attr]
    assert {str(m["hash"]) for m in manifests} == planned


def test_workers_in_a_grid_block_run_in_parallel(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path, steps=200, extra="    workers = 2\n"), tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    manifests = _manifests(root)
    assert len(manifests) == 6 and all(m["status"] == "finished" for m in manifests)
    assert len({m["pid"] for m in manifests}) == 2
    assert _rows(root) == [1] * 6


def test_shards_split_a_grid_statically(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path, steps=5), tmp_path / "runs"
    runs = list(specc.plan(spec).plan.runs())  # type: ignore[union-attr]
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--shard", "1/2"]) == 0
    assert {str(m["hash"]) for m in _manifests(root)} == {runs[1].hash, runs[3].hash, runs[5].hash}
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--shard", "0/2"]) == 0
    assert len(_manifests(root)) == 6
    bad = subprocess.run([sys.executable, "-m", "specc.cli.main", "run", str(spec), "--shard",
                          "2/2"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "I must be in 0..N-1" in bad.stderr


def test_launch_runs_a_grid_as_an_array_of_three_workers(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """`specc launch --executor local`: submitit's local executor runs one job array of three
    workers on the store; the six runs are shared, each trained exactly once."""
    pytest.importorskip("submitit")
    spec, root = _spec(tmp_path, steps=60), tmp_path / "runs"
    assert main(["launch", str(spec), "--executor", "local", "--workers", "3", "--store",
                 str(root), "--wait", "--timeout-min", "20"]) == 0
    out = capsys.readouterr().out
    assert "experiment g: 3 task(s)" in out and "3 of 3 task(s) finished" in out
    manifests = _manifests(root)
    assert len(manifests) == 6 and all(m["status"] == "finished" for m in manifests)
    assert len({m["pid"] for m in manifests}) >= 2, "the tasks shared the grid"
    assert _rows(root) == [1] * 6
    assert list((root / "launch").glob("*_log.out")), "submitit's logs are in the store"


@pytest.mark.slow
def test_launch_runs_a_two_node_run_as_one_job_of_two_tasks(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """`train { nodes = 2 }` under `specc launch --executor local`: one job whose two tasks
    are the run's node ranks (on this host), meeting at the job's rendezvous."""
    pytest.importorskip("submitit")
    spec = tmp_path / "n2.exp"
    spec.write_text(GRID.format(steps=20, extra="").replace(
        "seed in [0, 1, 2, 3, 4, 5]", "seed in [0]").replace(
        "eval_every = 20", "eval_every = 10; nodes = 2"))
    root = tmp_path / "runs"
    assert main(["launch", str(spec), "--executor", "local", "--store", str(root), "--wait",
                 "--timeout-min", "20"]) == 0
    out = capsys.readouterr().out
    assert "experiment g: one job of 2 nodes" in out and "1 of 1 task(s) finished" in out
    [m] = _manifests(root)
    assert m["status"] == "finished" and m["world_size"] == 2


def test_a_preempted_launch_task_is_requeued_and_resumes_exactly(tmp_path: Path) -> None:
    """submitit's preemption signal (USR2) on a local task mid-run: the run saves a checkpoint
    at the signal (there is no periodic one), the task is requeued and resumes from it; every
    row is logged once."""
    submitit = pytest.importorskip("submitit")
    import time

    from specc.cli.launch import Worker

    spec = tmp_path / "one.exp"
    spec.write_text(GRID.format(steps=400, extra="").replace(
        "seed in [0, 1, 2, 3, 4, 5]", "seed in [0]").replace(
        "eval_every = 400", "eval_every = 50; checkpoint_every = 1000"))
    root = tmp_path / "runs"
    executor = submitit.AutoExecutor(folder=tmp_path / "launch", cluster="local")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(Worker(["run", str(spec), "--store", str(root), "--quiet"]))
    deadline = time.time() + 300
    while not [p for p in root.glob("g/*/metrics.jsonl") if p.stat().st_size]:
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.2)
    # SLURM signals the task itself (submitit's USR2); the local executor's controller does not
    # forward it, so the signal goes to the controller's child, the task
    controller = job._process.pid  # type: ignore[attr-defined]
    [task] = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), signal.SIGUSR2)
    assert job.result() == 0, job.stderr()
    log = (job.stdout() or "") + (job.stderr() or "")
    resumed = re.search(r"resumed at step (\d+)", log)
    assert resumed and 0 < int(resumed[1]) < 400, log[-3000:]  # the checkpoint of the signal
    [run] = [d for d in root.glob("g/*") if d.is_dir()]
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["step"] == 400
    steps = [r["step"] for r in MetricsLog(run / "metrics.jsonl").rows()]
    assert steps == [50, 100, 150, 200, 250, 300, 350, 400]
    train = [r["step"] for r in MetricsLog(run / "metrics.jsonl").rows("train")]
    assert train == list(range(10, 401, 10))


@pytest.mark.slow
def test_two_node_ranks_on_one_host_train_the_losses_of_one_process(tmp_path: Path) -> None:
    """`train { nodes = 2 }`: two `specc run --rdzv 127.0.0.1:PORT` (two node ranks, c10d on
    this host, gloo) train the same losses as one process."""
    import socket

    losses = {}
    for nodes in (1, 2):
        spec = tmp_path / f"n{nodes}.exp"
        spec.write_text(GRID.format(steps=20, extra="").replace(
            "seed in [0, 1, 2, 3, 4, 5]", "seed in [0]").replace(
            "eval_every = 20", f"eval_every = 10; nodes = {nodes}"))
        root = tmp_path / f"runs{nodes}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "specc.cli.main", "run", str(spec), "--root", str(root),
               "--quiet", "--rdzv", f"127.0.0.1:{port}"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(nodes)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0] * nodes, outs
        [m] = _manifests(root)
        assert m["status"] == "finished" and m["world_size"] == nodes
        [run] = [d for d in (root / "g").iterdir() if d.is_dir()]
        losses[nodes] = [(r["step"], r["loss"]) for r in MetricsLog(run / "metrics.jsonl").rows()]
    assert [s for s, _ in losses[1]] == [s for s, _ in losses[2]] == [10, 20]
    for (_, a), (_, b) in zip(losses[1], losses[2], strict=True):
        assert b == pytest.approx(a, rel=1e-5)


def test_nodes_need_a_multi_process_backend() -> None:
    text = GRID.format(steps=5, extra="").replace("eval_every = 5", "eval_every = 5; nodes = 2")
    assert specc.check(text) == []
    assert [d.code for d in specc.check(text, backend="xla")] == ["backend-unsupported"]


@pytest.mark.slow
def test_a_multi_node_run_refuses_a_store_the_nodes_do_not_share(tmp_path: Path) -> None:
    """Two node ranks given different stores: every rank checks it sees what rank 0 wrote, so
    both stop with the same clear error instead of training apart."""
    import socket

    spec = tmp_path / "n.exp"
    spec.write_text(GRID.format(steps=5, extra="").replace(
        "seed in [0, 1, 2, 3, 4, 5]", "seed in [0]").replace(
        "eval_every = 5", "eval_every = 5; nodes = 2"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "specc.cli.main", "run", str(spec),
                               "--root", str(tmp_path / f"store{i}"), "--quiet", "--rdzv",
                               f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode != 0 for p in procs), outs
    assert any("is not shared between the nodes" in err for _, err in outs), outs
