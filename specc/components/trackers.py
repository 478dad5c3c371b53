"""Experiment trackers: ``trackers = [tensorboard, mlflow(uri = ...), wandb(project = ...)]``
or ``specc run --tracker NAME``. Each is its own library, installed as an optional extra
(``pip install 'specc-exp[trackers]'``), and logs what the run's store holds:

- at the start, the run's configuration (its hash, experiment, bindings);
- every metrics row as it is written (Note [Metrics rows]): the training rows under
  ``train/...``, the evaluation rows under ``eval/...``, by step;
- at the end, the status, the manifest and metrics.jsonl, and with ``models = true`` the final
  model directory.

Runs of one experiment are grouped the way each tool groups: a TensorBoard directory per run
under the experiment's, a W&B ``group``, an MLflow parent run. A tracker never changes what a
run computes, so trackers are not part of a run's hash (Note [Run hash]).

Note [Tracker failures]: a tracker that fails while a run trains (a full disk, a server gone)
prints a warning and is dropped; the run goes on, since the store holds everything anyway.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import attrs

from specc.api import BuildContext, component


@attrs.frozen
class RunInfo:
    """What a tracker knows of a run when it starts."""

    experiment: str
    name: str
    hash: str
    config: dict[str, Any]
    bindings: dict[str, Any]
    path: Path  # the run's directory
    store: Path  # the store's root
    group: str  # the runs logged together: the experiment's


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("step", "kind")}


def _prefix(row: dict[str, Any]) -> str:
    return "train" if row.get("kind") == "train" else "eval"


class TensorBoard:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.writer: Any = None

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        root = Path(self.directory)
        root = root if root.is_absolute() else run.store / root
        self.writer = SummaryWriter(log_dir=str(root / run.experiment / f"{run.name}-{run.hash}"))
        self.writer.add_text("config", "```\n" + json.dumps(run.config, indent=2) + "\n```")

    def log(self, row: dict[str, Any]) -> None:
        step, prefix = int(row.get("step", 0)), _prefix(row)
        for key, value in _numbers(row).items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)
        self.writer.flush()

    def finish(self, status: str, run: RunInfo, models: bool) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


class MLflow:
    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        self.client: Any = None
        self.run_id = ""

    def start(self, run: RunInfo) -> None:
        import os

        # a server that is down fails a start in seconds, not after MLflow's minutes of retries
        # (Note [Tracker failures]); the variables set by a user win
        for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
                            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")):
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        # MLflow's file store is in maintenance mode: the default is a SQLite store
        uri = self.uri or f"sqlite:///{(run.store / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        name = self.experiment or run.experiment
        found = self.client.get_experiment_by_name(name)
        # beside the default store, never in the current directory (MLflow's ./mlruns)
        where = None if self.uri else (run.store / "mlflow-artifacts").resolve().as_uri()
        exp_id = (found.experiment_id if found
                  else self.client.create_experiment(name, artifact_location=where))
        parent = _mlflow_parent(self.client, exp_id, run)
        tags = {"specc.hash": run.hash, "specc.group": run.group, "mlflow.parentRunId": parent}
        made = self.client.create_run(exp_id, run_name=run.name, tags=tags)
        self.run_id = made.info.run_id
        flat = {k: json.dumps(v) if not isinstance(v, (int, float, str)) else v
                for k, v in _flatten(run.config).items()}
        for key, value in list(flat.items())[:500]:  # MLflow caps a run's parameters
            self.client.log_param(self.run_id, key[:250], str(value)[:6000])
        self.client.log_dict(self.run_id, run.config, "config.json")

    def log(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step, prefix = int(row.get("step", 0)), _prefix(row)
        stamp = int(float(row.get("time", 0)) * 1000)
        metrics = [Metric(f"{prefix}/{k}", v, stamp, step) for k, v in _numbers(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, status: str, run: RunInfo, models: bool) -> None:
        for name in ("manifest.json", "metrics.jsonl"):
            if (run.path / name).is_file():
                self.client.log_artifact(self.run_id, str(run.path / name))
        if models and (run.path / "final").is_dir():
            self.client.log_artifacts(self.run_id, str(run.path / "final"), "final")
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished"
                                   else "KILLED" if status == "interrupted" else "FAILED")


def _mlflow_parent(client: Any, exp_id: str, run: RunInfo) -> str:
    """The parent run of the group, made once: a lock in the store keeps two workers of one
    sweep from making two."""
    import fcntl

    lock = run.store / ".mlflow-parent.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        query = f"tags.`specc.parent` = '{run.group}'"
        found = client.search_runs([exp_id], filter_string=query, max_results=1)
        if found:
            return str(found[0].info.run_id)
        made = client.create_run(exp_id, run_name=run.group,
                                 tags={"specc.parent": run.group})
        return str(made.info.run_id)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


class WandB:
    def __init__(self, project: str, entity: str, mode: str) -> None:
        self.project, self.entity, self.mode = project, entity, mode
        self.run: Any = None

    def start(self, run: RunInfo) -> None:
        import wandb

        self.run = wandb.init(project=self.project, entity=self.entity or None, mode=self.mode,
                              group=run.group, name=run.name, id=run.hash, resume="allow",
                              config=run.config, dir=str(run.store),
                              settings=wandb.Settings(silent=True, console="off"),
                              reinit="create_new")

    def log(self, row: dict[str, Any]) -> None:
        prefix = _prefix(row)
        self.run.log({f"{prefix}/{k}": v for k, v in _numbers(row).items()},
                     step=int(row.get("step", 0)))

    def finish(self, status: str, run: RunInfo, models: bool) -> None:
        import wandb

        art = wandb.Artifact(f"run-{run.hash}", type="specc-run")
        for name in ("manifest.json", "metrics.jsonl"):
            if (run.path / name).is_file():
                art.add_file(str(run.path / name))
        if models and (run.path / "final").is_dir():
            art.add_dir(str(run.path / "final"), name="final")
        self.run.log_artifact(art)
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status == "finished" else 1)


@attrs.define
class Tracking:
    """A run's trackers (Note [Tracker failures]); built by the run's main process."""

    trackers: list[tuple[str, Any]]
    run: RunInfo

    def start(self) -> None:
        self._each("start", lambda t: t.start(self.run))

    def log(self, row: dict[str, Any]) -> None:
        self._each("log", lambda t: t.log(row))

    def finish(self, status: str) -> None:
        self._each("finish", lambda t: t.finish(status, self.run, getattr(t, "models", False)))

    def _each(self, what: str, call: Any) -> None:
        for name, tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as exc:  # noqa: BLE001 - Note [Tracker failures]
                sys.stderr.write(f"warning: tracker {name} failed ({what}): "
                                 f"{type(exc).__name__}: {str(exc)[:300]}; it is dropped, the "
                                 "store keeps the run's metrics\n")
                self.trackers.remove((name, tracker))


def _made(tracker: Any, models: bool) -> Any:
    tracker.models = models
    return tracker


@component("tracker")
def tensorboard(directory: str = "tensorboard", models: bool = False, *,
                ctx: BuildContext) -> Any:
    """TensorBoard event files: one directory per run under ``directory/experiment`` (in the
    store unless absolute); ``tensorboard --logdir`` shows them.

    Args:
        directory: where the event files go (relative to the store)
        models: unused by TensorBoard (it holds no files); accepted for symmetry
    """
    return _made(TensorBoard(directory), models)


@component("tracker")
def mlflow(uri: str = "", experiment: str = "", models: bool = False, *,
           ctx: BuildContext) -> Any:
    """MLflow tracking: a run per specc run under a parent run per experiment.

    Args:
        uri: tracking URI ("" : a SQLite store, mlflow.db in the store; or http://host:5000)
        experiment: MLflow experiment name ("" : the specc experiment's)
        models: also log the final model directory as artifacts (it can be large)
    """
    return _made(MLflow(uri, experiment), models)


@component("tracker")
def wandb(project: str = "specc", entity: str = "",
          mode: Literal["offline", "online", "disabled"] = "offline", models: bool = False, *,
          ctx: BuildContext) -> Any:
    """Weights & Biases: a run per specc run, grouped by experiment. ``mode = offline`` (the
    default) writes wandb/ in the store for ``wandb sync``; ``online`` needs ``wandb login``.

    Args:
        project: W&B project
        entity: W&B entity (team or user; "" : the default)
        mode: offline, online or disabled
        models: also add the final model directory to the run's artifact
    """
    return _made(WandB(project, entity, mode), models)
