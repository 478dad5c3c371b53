"""The parts of the training loop that open it beyond language models (docs/components.md):
building a model, data feed, objective and metrics written with ``specc.api``
(`specc/runtime/plugins.py` imports them), rebuilding a ``checkpoint(exp)`` of such a model,
evaluating its metrics, and saving it as a state dict plus the call that built it.

``Trainer`` (`specc/runtime/loop.py`) takes these as a mixin: one loop, with these methods.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from specc.api import BuildContext
from specc.catalogue.components import default_objective
from specc.catalogue.pyread import is_api_component
from specc.components import metrics as M
from specc.components import models
from specc.diagnostics import Span, SpeccError
from specc.runtime import plugins
from specc.runtime.control import StageError, stage
from specc.store.files import verify_checksums, write_checksums

COMPONENT_FILE = "component.json"  # beside a non-Hugging-Face model's state.pt


def batch_rows(batch: dict[str, Any]) -> int:
    """The number of items in a batch: the first dimension of its first tensor."""
    for v in batch.values():
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    raise StageError("a training batch holds no tensor with a batch dimension "
                     "(docs/components.md: the data contract)", None)


def _flatten(key: str, value: Any) -> dict[str, Any]:
    """A metric's value as row entries: a number as ``key``, a dict as ``key.name`` (recursively),
    a vector (list, tuple, 1-d tensor) as a list of numbers."""
    if isinstance(value, dict):  # the empty key is the metric's own value (`adce`, `adce.lo`)
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{key}.{k}" if k != "" else key, v))
        return out
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, (list, tuple)):
        return {key: [float(v.item() if hasattr(v, "item") else v) for v in value]}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StageError(f"metric {key} returned a {type(value).__name__}; a metric returns a "
                         "number, a list of numbers or a dict of them", None)
    return {key: float(value)}



class OpenComponents:
    """Trainer methods for specc.api components (see the module's docstring)."""

    cfg: dict[str, Any]
    spans: dict[str, Span]
    rt: Any
    base: Path
    store_root: Path
    path: Path
    train: dict[str, Any]
    allow_python: bool
    generic: bool
    saved: dict[str, Any] | None
    data: Any
    model_raw: Any
    objective: Any
    metric_fns: dict[str, Any]
    metric_objects: dict[str, Any]
    vocab: Any
    vocab_cfg: Any
    context: int
    _eval_forward: Any
    shapes: Any

    def _ctx(self, seed: int) -> BuildContext:
        return BuildContext(seed=seed, device=self.rt.device, base=self.base, run_dir=self.path,
                            data=getattr(self, "data", None), vocab=getattr(self, "vocab", None),
                            rewrites=self.rewrites)

    @property
    def rewrites(self) -> tuple[str, ...]:
        """The compiler's rewrites applied to this run (Note [Rewrites])."""
        asked = self.cfg.get("train", {}).get("rewrites")
        return tuple(asked) if isinstance(asked, list) else ()

    def _build_generic(self, seed: int) -> Any:
        """A model written with specc.api: its data feed first (the model may read its schema),
        then the model; no vocabulary (Note [Default objective])."""
        import torch

        self.vocab = self.vocab_cfg = None
        self.context = 0
        data_cfg, model_cfg = self.cfg["data"], self.cfg["model"]
        span = self.spans.get("data")
        with stage(f"data {data_cfg.get('name', '')}", span):
            if not is_api_component(data_cfg):
                raise StageError(f"model {model_cfg.get('component')} is not a language model, "
                                 f"and data {data_cfg.get('component')} feeds token sequences "
                                 "to one; use data written with specc.api", span)
            self.data = self._call(data_cfg, seed, span)
            missing = [m for m in ("train_batch", "eval_batches") if not hasattr(self.data, m)]
            if missing:
                raise StageError(f"data {data_cfg.get('component')} returned a "
                                 f"{type(self.data).__name__} without {', '.join(missing)} "
                                 "(docs/components.md: the data contract)", span)
        span = self.spans.get("model")
        with stage(f"model {model_cfg.get('name', '')}", span):
            model = (self._load_saved(seed, span) if self.saved is not None
                     else self._call(model_cfg, seed, span))
            if not isinstance(model, torch.nn.Module):
                raise StageError(f"model {model_cfg.get('component')} returned a "
                                 f"{type(model).__name__}, not a torch.nn.Module", span)
        return model

    def _saved_component(self, cfg: Any) -> dict[str, Any] | None:
        """The component call a non-Hugging-Face model was saved with, when the model is
        ``checkpoint(exp)`` of one (its ``component.json``)."""

        if not isinstance(cfg, dict) or cfg.get("component") != "checkpoint":
            return None
        try:
            where = models.checkpoint_dir(cfg, self.store_root)
        except (SpeccError, KeyError, TypeError):
            return None  # reported by the model stage, at the model's line
        f = where / COMPONENT_FILE
        if not f.is_file():
            return None
        saved = json.loads(f.read_text())
        saved["dir"] = str(where)
        return saved

    def _load_saved(self, seed: int, span: Span | None) -> Any:
        """``checkpoint(exp)`` of a specc.api model: the builder called again with the saved
        arguments, then the saved weights (loaded with ``weights_only``)."""
        import torch

        saved = self.saved or {}
        where = Path(saved["dir"])
        verify_checksums(where)
        ctx = self._ctx(seed)
        ctx.base = Path(saved.get("base") or self.base)
        model = plugins.build(saved["model"], ctx, allow_python=self.allow_python, span=span)
        state = torch.load(where / "state.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model

    def _call(self, cfg: dict[str, Any], seed: int, span: Span | None) -> Any:
        return plugins.build(cfg, self._ctx(seed), allow_python=self.allow_python, span=span)

    def _build_objective(self, seed: int, model: Any) -> None:
        """The objective: the experiment's, else the model's default (Note [Default
        objective])."""
        cfg = self.cfg.get("objective")
        span = self.spans.get("objective") or self.spans.get("model")
        if not isinstance(cfg, dict):
            built_by = self.saved["model"] if self.saved is not None else self.cfg["model"]
            provides = (plugins.provides(built_by, self.base, self.allow_python)
                        if self.generic else ("causal_lm",))
            name = default_objective(provides)
            if name is None:
                raise StageError(f"model {self.cfg['model'].get('component')} provides "
                                 f"{', '.join(provides) or 'nothing'}, which implies no "
                                 "objective; set `objective = ...`", span)
            cfg = {"component": name}
        ctx = self._ctx(seed)
        ctx.model = model
        with stage(f"objective {cfg.get('component')}", span):
            self.objective = plugins.build(cfg, ctx, allow_python=self.allow_python, span=span)

    def _build_statistics(self) -> None:
        """specc's own language-model and circuit metrics, built once before the circuits and
        the policy (they need no model): token statistics and circuit statistics by key."""
        from specc.components import build

        self.metric_objects: dict[str, Any] = {}
        span = self.spans.get("metrics")
        for m in self.cfg.get("metrics") or []:
            if not is_api_component(m):
                with stage(f"metric {m.get('component')}", span):
                    self.metric_objects[M.metric_key(m)] = build(m, self._ctx(0))

    def _build_metrics(self) -> None:
        """Metrics written with specc.api, built once (they receive the trained model)."""
        # specc's own metrics that measure the model themselves (te, adce...), then the others
        self.metric_fns: dict[str, Any] = {
            k: fn for k, fn in self.metric_objects.items()
            if callable(fn) and not isinstance(fn, (M.TokenStatistic, M.CircuitStatistic))}
        ctx = self._ctx(int(self.cfg.get("seed", 0)))
        ctx.model = self.model_raw
        for m in self.cfg.get("metrics") or []:
            if is_api_component(m):
                span = self.spans.get("metrics")
                with stage(f"metric {m.get('component')}", span):
                    self.metric_fns[M.metric_key(m)] = plugins.build(
                        m, ctx, allow_python=self.allow_python, span=span)

    def _evaluate_once(self, metrics: list[dict[str, Any]]) -> dict[str, Any]:
        """Every metric on the current weights: the language-model metrics in one pass per split,
        the objective's held-out loss for other models, then the specc.api metrics."""

        batch = max(int(self.train["batch"]), 32)
        keys = [M.metric_key(m) for m in metrics]
        stats = {k: self.metric_objects[k] for k in keys
                 if isinstance(self.metric_objects.get(k), M.TokenStatistic)}
        if not self.generic:
            out: dict[str, Any] = M.evaluate(
                self.model_raw, self.data, stats, batch=batch, forward=self._eval_forward,
                shapes=self.shapes, boundary=self.rt.boundary)
        else:  # the held-out objective; the other token statistics need a causal LM
            out = {k: self._objective_loss(stat.split, batch) for k, stat in stats.items()
                   if stat.objective}
        with self._evaluating():
            for key, fn in self.metric_fns.items():
                out.update(_flatten(key, fn(self.model_raw, self.data)))
                self.rt.boundary()
        return out

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The model in eval mode, without gradients; its mode restored after."""
        import torch

        was_training = self.model_raw.training
        self.model_raw.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model_raw.train(was_training)

    def _objective_loss(self, split: str, batch: int) -> float:
        """The objective's summed loss over its summed weight on a split (held-out loss)."""

        total = weight = None
        with self._evaluating():
            for b in self.data.eval_batches(split, batch):
                b = self.rt.to_device(dict(b))
                with self.rt.autocast():
                    loss, w = self.objective(self.model_raw, b)[:2]
                total = loss.detach().double() if total is None else total + loss.double()
                w = w.double() if hasattr(w, "double") else float(w)
                weight = w if weight is None else weight + w
                self.rt.boundary()
        if total is None:
            return float("nan")
        return float(total.item()) / float(weight.item() if hasattr(weight, "item") else weight)

    def _save_model(self, model: Any, where: Path) -> None:
        """A Hugging Face model in its own format; any other module as its state dict
        (``state.pt``, loaded with ``weights_only``) plus the component call that built it
        (``component.json``), so ``checkpoint(exp)`` rebuilds it by calling the builder again."""
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(str(where))
            return

        import torch

        where.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), where / "state.pt")
        write_checksums(where, ["state.pt"], {"format": 1})
        built_by = self.saved["model"] if self.saved is not None else self.cfg["model"]
        (where / COMPONENT_FILE).write_text(json.dumps(
            {"model": built_by, "data": self.cfg["data"], "seed": int(self.cfg.get("seed", 0)),
             "base": str(Path(self.saved.get("base") or self.base) if self.saved else
                         self.base.resolve())}, indent=2, sort_keys=True))
