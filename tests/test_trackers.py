"""Trackers (specc/components/trackers.py): TensorBoard event files, an MLflow file store and a
W&B offline directory hold each run's configuration and metrics rows; a sweep's runs are
grouped; trackers are not part of a run's hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import specc
from specc.cli.main import main

GRID = """experiment g {{
  model m = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
  data task = arithmetic(ops = ["+"], max = 20, train = 200, test = 50)
  train {{ optimizer = adamw(lr = 1e-3); batch = 16; steps = 20; eval_every = 10 }}
  metrics = [loss]
  {trackers}
  sweep grid {{ seed in [0, 1] }}
}}
"""


def test_trackers_are_not_part_of_a_runs_hash() -> None:
    plain = specc.plan(GRID.format(trackers=""))
    tracked = specc.plan(GRID.format(trackers="trackers = [tensorboard, wandb(mode = disabled)]"))
    assert plain.ok and tracked.ok
    hashes = [[r.hash for r in p.plan.experiments[0].runs()] for p in (plain, tracked)]
    assert hashes[0] == hashes[1]


def test_a_grid_logs_to_tensorboard_mlflow_and_wandb(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    spec = tmp_path / "g.exp"
    spec.write_text(GRID.format(
        trackers='trackers = [tensorboard, mlflow(experiment = "grid"), '
                 'wandb(project = "p", mode = offline)]'))
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet"]) == 0
    runs = sorted(d for d in (root / "g").iterdir() if d.is_dir())
    hashes = sorted(d.name for d in runs)
    assert len(hashes) == 2

    # TensorBoard: a directory per run under the experiment's, read back with its own reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dirs = sorted((root / "tensorboard" / "g").iterdir())
    assert [d.name.rsplit("-", 1)[1] for d in tb_dirs] == hashes or \
        sorted(d.name.rsplit("-", 1)[1] for d in tb_dirs) == hashes
    acc = EventAccumulator(str(tb_dirs[0])).Reload()
    assert [e.step for e in acc.Scalars("train/train_loss")] == [10, 20]
    assert [e.step for e in acc.Scalars("eval/loss")] == [10, 20]
    assert "config" in "".join(acc.Tags()["tensors"])

    # MLflow: a SQLite store in the store, a parent run per experiment and a child per run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name("grid")
    found = client.search_runs([exp.experiment_id])
    parents = [r for r in found if r.data.tags.get("specc.parent") == "g"]
    children = [r for r in found if "specc.hash" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.tags["specc.hash"] for r in children) == hashes
    child = children[0]
    assert child.data.params["train.batch"] == "16" and child.info.status == "FINISHED"
    history = client.get_metric_history(child.info.run_id, "eval/loss")
    assert [m.step for m in history] == [10, 20]
    arts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"manifest.json", "metrics.jsonl", "config.json"} <= arts
    assert (root / "mlflow-artifacts").is_dir() and not Path("mlruns").exists()

    # W&B: offline run directories in the store, one per run, grouped by experiment; read
    # back from the run's transaction log (W&B's records in LevelDB's log framing)
    offline = sorted((root / "wandb").glob("offline-run-*"))
    assert sorted(d.name.rsplit("-", 1)[1] for d in offline) == hashes
    records = _wandb_records(next(offline[0].glob("run-*.wandb")))
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "g" and run.run_id in hashes and run.project == "p"
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["train"]["batch"] == 16
    history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    assert [h.step.num for h in history] == [10, 20]
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in h.item}
               for h in history]
    assert all("eval/loss" in h and "train/grad_norm" in h for h in history)
    assert any(r.WhichOneof("record_type") == "artifact" for r in records)


def _wandb_records(path: Path) -> list[object]:
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, part, out = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        part = chunk if kind in (1, 2) else part + chunk
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(part)
            out.append(record)
    return out


def test_the_tracker_flag_adds_one_and_a_broken_tracker_does_not_stop_a_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    spec = tmp_path / "g.exp"
    spec.write_text(GRID.format(trackers='trackers = [mlflow(uri = "http://127.0.0.1:9")]')
                    .replace("seed in [0, 1]", "seed in [0]"))
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--tracker",
                 "tensorboard"]) == 0
    assert "warning: tracker mlflow failed (start)" in capsys.readouterr().err
    assert len(list((root / "tensorboard" / "g").iterdir())) == 1
