"""The study behind a search: storage, exact trial budget, failure classes, retries, reaping.

Note [Exact trial budget]: Optuna's own caps are soft (concurrent workers overshoot). Here every
trial has a budget index: the number of *counted* trials whose number is not larger than its own.
A trial is counted unless it was superseded by a retry or refused as over budget. A trial whose
index exceeds the cap is refused at once, before it runs, so exactly ``trials`` trials run to an
end. A retry is enqueued before its failed original is marked superseded, so near the cap a race
costs a fresh trial its slot, never the retry.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.diagnostics import SpeccError
from specc.store.urls import redact

SUPERSEDED = "specc:superseded"
OVER = "specc:over_budget"
FAILURE = "specc:failure"
REASON = "specc:reason"
ATTEMPT = "specc:attempt"
RETRY_OF = "specc:retry_of"
WORKER = "specc:worker"
HEARTBEAT = "specc:heartbeat"
RUN = "specc:run"
CLASSES = ("exception", "nan", "oom", "killed")
HEARTBEAT_S = 2.0
GRACE_S = 15.0


def storage_url(search: ir.Search, experiment: str, root: Path) -> str:
    field = next(f for f in search.settings if f.path == "storage")
    value = str(field.value.value) if isinstance(field.value, ir.Const) else ""
    if field.origin.how == "default":
        return str(root / f"{experiment}.journal")
    return value.replace("{experiment}", experiment)


def open_storage(url: str, *, create: bool = True) -> Any:
    """A journal file (default, no server) or an RDB URL (PostgreSQL to scale out).

    ``create=False`` (reports) never creates a file, a folder or a table: a storage that does
    not exist yet is a ``SpeccError``. Messages never show a password (``redact``).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in url:
        full = url
        if url.startswith("postgresql://"):
            full = "postgresql+psycopg://" + url[len("postgresql://"):]
        # Note [Schema race]: workers that start together on an empty database all create
        # Optuna's tables; PostgreSQL lets one CREATE TYPE win and fails the others with a
        # unique violation. The tables then exist, so a short retry opens them.
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(full, engine_kwargs={"pool_pre_ping": True},
                                                  skip_table_creation=not create)
            except Exception as exc:
                text = str(exc)
                if create and attempt < 5 and ("already exists" in text
                                               or "UniqueViolation" in text
                                               or "duplicate key" in text):
                    time.sleep(0.2 * (attempt + 1))
                    continue
                msg = f"cannot open the study storage {redact(url)}: {redact(text, url)}"
                raise SpeccError(msg) from exc
    if not create and not Path(url).is_file():
        raise SpeccError(f"no study is stored in {url} yet")
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def study_name(exp: ir.Experiment) -> str:
    """One study per meaning of the experiment: a changed spec starts a new study. How many
    trials, workers and which storage are not part of it, so raising ``trials`` continues."""
    import attrs

    search = exp.search
    if search is not None:
        kept = tuple(f for f in search.settings
                     if f.path not in ("trials", "workers", "timeout", "storage"))
        exp = attrs.evolve(exp, search=attrs.evolve(search, settings=kept))
    return f"{exp.name}-{ir.content_hash(exp)[:10]}"


def counted(t: Any) -> bool:
    return not (t.user_attrs.get(SUPERSEDED) or t.user_attrs.get(OVER))


def budget_index(trials: list[Any], number: int) -> int:
    return sum(1 for t in trials if t.number <= number and counted(t))


def slots_used(trials: list[Any]) -> int:
    return sum(1 for t in trials if counted(t))


def retry_policy(search: ir.Search) -> tuple[int, set[str]]:
    comp = search.setting("retry")
    if not isinstance(comp, ir.Comp):
        return 0, set()
    limit = comp.arg("max")
    on = comp.arg("on")
    classes = {str(i.value) for i in on.items} if isinstance(on, ir.ListV) else set()
    return int(limit.value) if isinstance(limit, ir.Const) else 0, classes  # type: ignore[arg-type]


def fail_and_maybe_retry(study: Any, trial_id: int, number: int, params: dict[str, Any],
                         attrs: dict[str, Any], failure: str, reason: str,
                         policy: tuple[int, set[str]]) -> bool:
    """Mark a trial FAIL with its failure class; enqueue a copy when the policy allows it."""
    import optuna

    storage = study._storage
    attempt = int(attrs.get(ATTEMPT, 0))
    retry = failure in policy[1] and attempt < policy[0]
    storage.set_trial_user_attr(trial_id, FAILURE, failure)
    storage.set_trial_user_attr(trial_id, REASON, reason[:500])
    if not params:
        # Its worker died before it chose parameters: nothing ran. It gives its slot back so a
        # fresh trial takes it (Note [Exact trial budget]).
        storage.set_trial_user_attr(trial_id, SUPERSEDED, True)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        return False
    if retry:
        study.enqueue_trial(params, user_attrs={ATTEMPT: attempt + 1, RETRY_OF: number},
                            skip_if_exists=False)
        storage.set_trial_user_attr(trial_id, SUPERSEDED, True)
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    return retry


def _alive(worker: dict[str, Any]) -> bool | None:
    """Whether a worker process still exists (None when it ran on another host)."""
    if worker.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(study: Any, policy: tuple[int, set[str]], grace: float = GRACE_S) -> list[int]:
    """Fail (and retry by policy) trials left RUNNING by a dead worker. Returns their numbers."""
    import optuna

    reaped = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER) or {}
        alive = _alive(worker) if worker else None
        beat = float(t.user_attrs.get(HEARTBEAT, t.datetime_start.timestamp()
                                      if t.datetime_start else now))
        if alive is False or (alive is None and now - beat > grace):
            try:
                fail_and_maybe_retry(study, t._trial_id, t.number, t.params,
                                     t.user_attrs, "killed",
                                     "its worker died while it ran", policy)
            except RuntimeError:
                continue  # another supervisor reaped it first
            reaped.append(t.number)
    return reaped


def claim(study: Any, trial: Any) -> None:
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, WORKER,
                                {"host": socket.gethostname(), "pid": os.getpid()})
    storage.set_trial_user_attr(trial._trial_id, HEARTBEAT, time.time())


def beat(study: Any, trial_id: int) -> None:
    # A trial reaped meanwhile refuses the write; the worker finds out when it tells.
    with contextlib.suppress(RuntimeError):
        study._storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
