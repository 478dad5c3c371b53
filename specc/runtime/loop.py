"""The loop template shared by every backend: build, resume, train, evaluate, checkpoint.

The step follows the step contract (ARCHITECTURE.md): it takes ``(model, batch)`` and returns
tensors; host reads go through the runtime's ``read`` at log and evaluation boundaries only.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from specc.api import BuildContext
from specc.catalogue.pyread import is_api_component
from specc.components import data as D
from specc.components import metrics as M
from specc.components import models, policies
from specc.components.vocab import build_vocab
from specc.diagnostics import Span
from specc.runtime import checkpoint, memory, plugins
from specc.runtime.circuit_watch import CircuitWatch
from specc.runtime.control import Interrupt, RunStopped, StageError, stage
from specc.runtime.open_components import OpenComponents, batch_rows
from specc.runtime.progress import Progress
from specc.store.files import (
    DiskFull,
    confined,
    is_disk_full,
    write_checksums,
)
from specc.store.runs import MetricsLog

# Note [Checkpoint schedule]: checkpoints follow their own schedule, not evaluations':
# `checkpoint_every` steps, else `eval_every`, else every CHECKPOINT_SECONDS of training, so
# that a run without evaluations still survives a kill. A checkpoint changes nothing the run
# computes, so its timing never changes results.
CHECKPOINT_SECONDS = 600.0


def _nbytes(obj: Any) -> int:
    """The bytes of the tensors in a nested state (a disk-full message's estimate)."""
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):
        return int(obj.element_size() * obj.nelement())
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 8


class Trainer(OpenComponents):
    """One run: everything the loop needs, built from a resolved configuration."""

    def __init__(self, config: dict[str, Any], run_path: Path, runtime: Any, *,
                 spans: dict[str, Span], base_dir: Path, store_root: Path,
                 progress: bool | str = True,
                 on_eval: Callable[[dict[str, Any]], None] | None = None,
                 allow_python: bool = True) -> None:
        self.cfg = config
        self.allow_python = allow_python
        self.base, self.store_root = base_dir, store_root
        self.saved = self._saved_component(config.get("model"))
        self.generic = is_api_component(config.get("model")) or self.saved is not None
        self.unit = "items" if self.generic else "tokens"
        self.circuits: CircuitWatch | None = None
        self.path = run_path
        self.rt = runtime
        self.spans = spans
        # Note [Progress]: bar on a terminal, timestamped lines elsewhere, none when quiet
        self.progress = {True: "bar", False: "none"}.get(progress, progress)  # type: ignore[call-overload]
        self.on_eval = on_eval
        self.train = config["train"]
        self.log = MetricsLog(run_path / "metrics.jsonl")
        # what the run itself decided (Note [Rewrites]: fit_batch, compile), for the manifest
        self.at_run: dict[str, Any] = {}

    # ------------------------------------------------------------ building
    def build(self) -> None:
        """Everything a run needs, in order: vocabulary, model and data, the budget, circuits,
        the policy, then the step (wrapped by the backend) and the optimizer."""
        seed = int(self.cfg.get("seed", 0))
        self.rt.seed(seed)
        model = self._build_model_and_data(seed)
        steps = self._budget()
        self._build_statistics()
        self.circuits = CircuitWatch.create(self, model)
        model = self._apply_policy(model, steps)
        self._build_step(model)
        self._build_metrics()
        self.step = 0
        self.tokens = 0
        self.started = time.time()
        eval_every = int(self.train.get("eval_every") or 0)
        self.eval_every = eval_every if eval_every > 0 else steps
        every = int(self.train.get("checkpoint_every") or 0)  # Note [Checkpoint schedule]
        self.ckpt_every = every if every > 0 else max(eval_every, 0)
        self._last_ckpt_time = time.time()

    def _build_model_and_data(self, seed: int) -> Any:
        model = (self._build_generic(seed) if self.generic
                 else self._build_language_model(seed))
        self._build_objective(seed, model)
        return model

    def _build_language_model(self, seed: int) -> Any:
        model_cfg = self.cfg["model"]
        with stage(f"model {model_cfg.get('name', '')}", self.spans.get("model")):
            self.vocab_cfg = models.vocab_config(model_cfg, self.base, self.store_root)
            self.vocab = build_vocab(self.vocab_cfg, self.base)
        context = int(model_cfg.get("context") or 1024)
        with stage(f"model {model_cfg.get('name', '')}", self.spans.get("model")):
            ctx = BuildContext(seed=seed, device=self.rt.device, base=self.base,
                               run_dir=self.path, vocab=self.vocab, store=self.store_root,
                               attention=self.rt.attention(), rewrites=self.rewrites)
            model = plugins.build(model_cfg, ctx, allow_python=self.allow_python,
                                  span=self.spans.get("model"))
            context = int(getattr(model.config, "max_position_embeddings", 0)
                          or getattr(model.config, "n_positions", context))
        self.context = context
        with stage(f"data {self.cfg['data'].get('name', '')}", self.spans.get("data")):
            self.data = self._token_data(self.cfg["data"], seed, self.spans.get("data"))
        return model

    def _token_data(self, cfg: dict[str, Any], seed: int, span: Span | None) -> Any:
        """A language model's token feed: specc's own data, or a component file's or a
        plug-in's (its examples, encoded with the model's vocabulary)."""
        if not is_api_component(cfg):
            return D.build_data(cfg, self.vocab, self.context, self.base, seed)
        ctx = BuildContext(seed=seed, device=self.rt.device, base=self.base, run_dir=self.path,
                           vocab=self.vocab, context=self.context)
        built = plugins.build(cfg, ctx, allow_python=self.allow_python, span=span)
        return D.token_feed(built, self.vocab, self.context,
                            D.order_seed(int(cfg.get("seed") or 0), seed), str(cfg["component"]))

    def _budget(self) -> int:
        """The run's optimizer steps, from steps, epochs or tokens (a token budget is also
        checked as tokens are seen)."""
        with stage("training budget", self.spans.get("train")):
            self.shapes = D.DYNAMIC if self.generic else D.shapes_for(
                self.train, self.data, getattr(self.rt, "compiles", False))
            steps = D.steps_for(self.data, self.train)
        per_item = 1.0 if self.generic else self.data.seq_len()
        self.tokens_per_step = float(self.train["batch"] * per_item)
        if steps is None:
            if self.train.get("tokens") is None:
                raise StageError("no training budget: give train.steps, train.epochs or "
                                 "train.tokens", self.spans.get("train"))
            steps = max(1, math.ceil(float(self.train["tokens"]) / self.tokens_per_step))
        self.total = steps
        return steps

    def _apply_policy(self, model: Any, steps: int) -> Any:

        with stage(f"policy {self.cfg['policy'].get('name', '')}", self.spans.get("policy")):
            at = policies.Applying(steps=steps, data=self.data, run=self.cfg, path=self.path,
                                   device=self.rt.device,
                                   base_circuit=self.circuits.base if self.circuits else None,
                                   build_data=self._subtask_data)
            model = policies.apply_policy(model, self.cfg["policy"], at)
        return model

    def _build_step(self, model: Any) -> None:
        rt = self.rt
        self.model_raw = model
        self.counts = policies.count_params(model)
        self.accumulate = memory.accumulation(self, model)  # Note [Memory model]
        # Graphs a compiling backend may build for the step: one per sequence length the shape
        # policy produces (it checks its own warm-up allowance on top).
        self.model = rt.wrap(model, shapes=self.shapes.count or 1)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.trainable = [p for _, p in self.named]
        ctx = self._ctx(int(self.cfg.get("seed", 0)))
        with stage("schedule", self.spans.get("train")):
            self.lr_at = plugins.build(self.train["schedule"], ctx, span=self.spans.get("train"))
        clip = self.train.get("grad_clip")
        self.clip = float(clip) if clip else None
        with stage("optimizer", self.spans.get("train")):
            make = plugins.build(self.train["optimizer"], ctx, span=self.spans.get("train"))
            self.opt = make(self.named, rt.optimizer_kwargs(self.train["optimizer"]))
        self.peak_lrs = [g["lr"] for g in self.opt.param_groups]
        self.ewa = {float(d): [p.detach().clone().float() for _, p in self.named]
                    for d in self.train.get("ewa") or []}
        self.adalora = self.cfg["policy"].get("component") == "adalora"
        self._compiled_step = rt.compile_step(self._device_step)

    def _subtask_data(self, cfg: dict[str, Any]) -> Any:
        """A subtask's data (compositional circuit_lora), with this run's vocabulary."""
        seed = int(self.cfg.get("seed", 0))
        with stage(f"data {cfg.get('name', '')}", self.spans.get("policy")):
            return self._token_data(cfg, seed, self.spans.get("policy"))

    # ------------------------------------------------------------ checkpoints
    def _ckpt_root(self) -> Path:
        return self.path / "checkpoints"

    def checkpoints(self) -> list[Path]:
        """The kept checkpoints, newest first (LATEST's target first), each confined to the
        checkpoint folder: a pointer or a link that leads outside it is ignored."""
        root = self._ckpt_root()
        if not root.is_dir():
            return []
        found = sorted((d for d in root.glob("step-*") if confined(root, d.name) is not None
                        and (d / "state.pt").is_file()), reverse=True)
        pointer = root / "LATEST"
        if pointer.is_file():
            name = pointer.read_text(errors="replace").strip()
            target = confined(root, name)
            if target is None:
                self._warn(f"ignoring {pointer}: it points outside the run's checkpoints "
                           f"({name[:80]!r})")
            else:
                found = sorted(found, key=lambda d: d.resolve() != target)  # stable
        return found

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[0] if found else None

    def _warn(self, text: str) -> None:
        if self.rt.is_main:
            import sys

            sys.stderr.write(f"warning: {text}\n")

    def save_checkpoint(self) -> None:
        """``checkpoints/step-N``: state.pt (tensors and plain values only, loaded with
        ``weights_only=True``) and checksums.json, written to a temporary folder and renamed;
        the last two are kept. A full disk is a clear error and leaves the previous ones. A
        sharded run's ranks write their shards beside it (Note [Sharded checkpoints])."""
        import torch

        is_sharded = getattr(self.rt, "sharded", False)
        pending = self._pending_window()  # a collective with several processes
        if not self.rt.is_main and not is_sharded:
            return
        root = self._ckpt_root()
        name = f"step-{self.step:08d}"
        tmp = root / f".tmp-{name}"
        state: dict[str, Any] = {
            "step": self.step, "tokens": self.tokens,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "elapsed": time.time() - self.started, "window": pending,
        }
        if is_sharded:
            state["sharded"] = checkpoint.FORMAT
        else:
            state.update(model=self.model_raw.state_dict(), optimizer=self.opt.state_dict(),
                         ewa=self.ewa)
        state = self.rt.host(state)
        names = ["state.pt"]
        try:
            if self.rt.is_main:
                root.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
            if is_sharded:
                self.rt.barrier()
                checkpoint.save(tmp / checkpoint.SHARDS, self.model_raw, self.opt,
                                self._ewa_state())
                self.rt.barrier()
                if not self.rt.is_main:
                    self._last_ckpt_time = time.time()
                    return
                names += checkpoint.files(tmp / checkpoint.SHARDS)
            torch.save(state, tmp / "state.pt")
            write_checksums(tmp, names, {"format": 1, "step": self.step,
                                         "tokens": self.tokens})
            final = root / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            pointer = root / "LATEST.tmp"
            pointer.write_text(name)
            os.replace(pointer, root / "LATEST")
        except (OSError, RuntimeError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            (root / "LATEST.tmp").unlink(missing_ok=True)
            cause = exc.__cause__ if isinstance(exc, RuntimeError) else exc
            if is_disk_full(exc) or is_disk_full(cause or exc):
                raise DiskFull(tmp / "state.pt", _nbytes(state)) from exc
            raise
        self._last_ckpt_time = time.time()
        for old in sorted(root.glob("step-*"))[:-2]:  # keep the last two
            shutil.rmtree(old, ignore_errors=True)

    def _pending_window(self) -> dict[str, Any] | None:
        """The training loss summed since the last training row over every rank, and its
        label count: kept in a checkpoint, so the resumed run's next row covers the same
        steps (nothing lost or counted twice)."""
        if self.window is None:
            return None
        parts = self.window if self.generic else (self.window,)
        return {"sums": [self.rt.read(self.rt.all_sum(p.clone() if self.rt.world > 1 else p))
                         for p in parts],
                "labels": self.window_labels}

    def _ewa_state(self) -> dict[str, Any]:
        return checkpoint.ewa_state([n for n, _ in self.named], self.ewa)

    def resume(self) -> bool:
        """Load the newest checkpoint that verifies; metrics logged after it are cut (they will
        be redone). A damaged one (checksum, truncation, a tampered pickle) is reported, set
        aside as ``damaged-step-N`` and the previous kept one is used."""
        for ckpt in self.checkpoints():
            try:
                state = checkpoint.read_state(ckpt)
            except ValueError as exc:
                self._warn(f"checkpoint {ckpt} is damaged: {exc}; using the previous one")
                if self.rt.is_main:
                    os.replace(ckpt, ckpt.with_name("damaged-" + ckpt.name))
                continue
            try:
                self._apply_state(state, ckpt)
            except ValueError as exc:  # shards that do not load: every rank sees the same
                self._warn(f"checkpoint {ckpt} does not load: {exc}; using the previous one")
                self.rt.barrier()
                if self.rt.is_main:
                    os.replace(ckpt, ckpt.with_name("damaged-" + ckpt.name))
                continue
            if self.rt.is_main:
                self.log.truncate_after(self.step)
            return True
        if self.log.path.exists() and self.rt.is_main:
            self.log.truncate_after(0)
        return False

    def _apply_state(self, state: dict[str, Any], ckpt: Path) -> None:
        import torch

        if state.get("sharded"):  # Note [Sharded checkpoints]: shards, at any world size
            checkpoint.load(ckpt / checkpoint.SHARDS, self.model_raw, self.opt, self._ewa_state())
        elif getattr(self.rt, "sharded", False):  # whole tensors into a sharded run
            checkpoint.load_whole(self.model_raw, self.opt, self.named, state["model"],
                                  state["optimizer"])
            params = [p for _, p in self.named]
            self.ewa = {d: [checkpoint.place_like(t, p) for t, p in zip(ts, params, strict=True)]
                        for d, ts in state["ewa"].items()}
        else:
            self.model_raw.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.ewa = {d: [t.to(self.rt.device) for t in ts] for d, ts in state["ewa"].items()}
        if pending := state.get("window"):  # rank 0 holds the sum; all_sum adds the rest
            sums = [torch.tensor(v if self.rt.is_main else 0.0).to(self.rt.device)  # uploaded
                    for v in pending["sums"]]
            self.window = tuple(sums) if self.generic else sums[0]
            self.window_labels = int(pending["labels"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.started = time.time() - float(state.get("elapsed", 0.0))

    # ------------------------------------------------------------ the step
    feed: Any = None  # the runtime's feed: get(step) -> the batch on the device; close()
    last_train_loss: float | None = None  # none before the first step (evaluation only)
    window: Any = None  # the summed token loss since the last log, on the device
    window_labels = 0  # the labels (items) the window sums over
    grad_norm: Any = None  # the last step's gradient norm (before clipping), on the device

    def _batch(self, step: int) -> dict[str, Any]:
        if self.generic:  # a feed written with specc.api: a pure function of the step
            batch = dict(self.data.train_batch(step, int(self.train["batch"])))
            batch["n_input"] = batch_rows(batch)
            return batch
        return self.data.train_batch(step, int(self.train["batch"]), self.shapes)

    def forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """Logits and aligned labels (next-token targets) for a batch."""
        with self.rt.autocast():
            out = self.model(input_ids=batch["input_ids"],
                             attention_mask=batch.get("attention_mask"))
        logits = out.logits
        labels = batch["labels"]
        if not batch.get("shifted"):
            logits, labels = logits[:, :-1], labels[:, 1:]
        return logits, labels

    def train_step(self, step: int) -> tuple[Any, int]:
        """One optimizer step; returns (this process's summed token loss, global label count).

        The host part (learning rate, the batch, token counts) runs here; the device part
        (forward, backward, clipping, the update) is the runtime's compiled step, which adds the
        step's loss to the running window on the device: nothing is read back until a log.
        """
        factor = self.lr_at(step, self.total, self.tokens_per_step)
        for g, peak in zip(self.opt.param_groups, self.peak_lrs, strict=True):
            g["lr"] = peak * factor
        batch = self.feed.get(step) if self.feed is not None else self._placed(self._batch(step))
        # Counts come from the host-side global batch: no device reads, no all-reduce.
        self.tokens += batch["n_input"]
        n_labels = batch.get("n_labels")
        # Note [Loss normalization]: the step's loss is the summed loss over the summed weight
        # (label tokens, items). When the feed knows the step's global weight on the host (a
        # language model's label count), each micro-batch's sum is scaled before backward (times
        # the world size, which DDP's gradient averaging divides back out); otherwise the
        # gradients are divided by the all-reduced summed weight after the micro-batches.
        scale = self.rt.world / max(n_labels, 1) if n_labels is not None else None
        if self.window is None:
            # (summed loss, summed weight) for objectives whose weight the host does not know
            self.window = self.rt.zero() if not self.generic else (self.rt.zero(),
                                                                   self.rt.zero())
        self._at = step
        self.window = self._compiled_step(batch, scale, self.window)
        return self.window, n_labels if n_labels is not None else batch["n_input"]

    def _placed(self, full: dict[str, Any]) -> dict[str, Any]:
        return self.rt.to_device(self.rt.shard(full))

    def _device_step(self, batch: dict[str, Any], scale: float | None, window: Any) -> Any:
        """The step on the device: micro-batches, the objective, backward, the optimizer;
        tensors only (Note [Loss normalization])."""
        import torch

        rt = self.rt
        accum = self.accumulate
        rows = batch_rows(batch)
        loss_sum = weight_sum = None
        for i in range(accum):
            if accum == 1:
                micro = batch
            else:
                sl = slice(i * rows // accum, (i + 1) * rows // accum)
                micro = {k: (v[sl] if hasattr(v, "shape") else v) for k, v in batch.items()}
            with rt.no_sync(self.model, last=i == accum - 1):
                with rt.autocast():  # autocast runs cross-entropy in fp32
                    loss, weight = self.objective(self.model, micro)[:2]
                scaled = loss * scale if scale is not None else loss
                if rt.scaler is not None:
                    rt.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            if scale is None:
                w = weight.detach().float() if hasattr(weight, "detach") else float(weight)
                weight_sum = w if weight_sum is None else weight_sum + w
        if scale is not None:
            self._optimizer_step()
            return window + loss_sum
        weight_t = torch.as_tensor(weight_sum, dtype=torch.float32, device=loss_sum.device)
        total = rt.all_sum(weight_t.clone())
        grads = [p.grad for p in self.trainable if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, rt.world / total.clamp_min(1e-12))
        self._optimizer_step()
        return window[0] + loss_sum.float(), window[1] + weight_t

    def _optimizer_step(self) -> None:
        import torch

        rt = self.rt
        if rt.scaler is not None:
            rt.scaler.unscale_(self.opt)
        if self.clip:  # the norm before clipping, read at the next training row
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.clip)
        else:
            grads = [p.grad for p in self.trainable if p.grad is not None]
            self.grad_norm = torch.nn.utils.get_total_norm(grads) if grads else None
        if rt.scaler is not None:
            rt.scaler.step(self.opt)
            rt.scaler.update()
        else:
            self.opt.step()
        if self.adalora:  # reads scores on the host (so `check` refuses it on XLA)
            self.model_raw.base_model.update_and_allocate(self._at)
        self.opt.zero_grad(set_to_none=True)
        if self.ewa:
            params = [p.detach().float() for p in self.trainable]
            for decay, shadow in self.ewa.items():
                torch._foreach_lerp_(shadow, params, 1.0 - decay)

    # ------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        metrics = self.cfg.get("metrics") or [{"component": "loss", "split": None}]
        out = self._evaluate_once(metrics)
        if self.circuits is not None and self.circuits.wants_metrics:
            out.update(self.circuits.measure(self.step, metrics))
        for decay, shadow in self.ewa.items():
            with self._swapped(shadow):
                ewa_out = self._evaluate_once(metrics)
            out.update({f"{k}@ewa{decay:g}": v for k, v in ewa_out.items()
                        if not k.endswith("_params")})
        return out

    def _eval_forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        batch = self.rt.to_device(batch)
        with self.rt.autocast():
            out = self.model_raw(input_ids=batch["input_ids"],
                                 attention_mask=batch.get("attention_mask"))
        logits, labels = out.logits, batch["labels"]
        if not batch.get("shifted"):
            logits, labels = logits[:, :-1], labels[:, 1:]
        return logits, labels

    @contextmanager
    def _swapped(self, shadow: list[Any]) -> Iterator[None]:
        import torch

        with torch.no_grad():
            saved = [p.detach().clone() for _, p in self.named]
            for (_, p), s in zip(self.named, shadow, strict=True):
                p.copy_(s.to(p.dtype))
            checkpoint.reshard(self.model_raw)  # no gathered copy of the old values stays in use
            try:
                yield
            finally:
                for (_, p), s in zip(self.named, saved, strict=True):
                    p.copy_(s)
                checkpoint.reshard(self.model_raw)
                self.rt.boundary()  # the restore is its own graph, not part of the next one

    # ------------------------------------------------------------ the loop
    def run(self, interrupt: Interrupt) -> dict[str, Any]:
        """Train to the budget; returns the last evaluation's row."""
        if self.total == 0 and self.train.get("tokens") is None:  # evaluation only
            return self.record(self.evaluate())
        bar = Progress(self.progress if self.rt.is_main else "none", self.total, self.step,
                       "items" if self.generic else "tok")
        token_budget = self.train.get("tokens")
        log_every = self.log_every = int(self.train.get("log_every") or 10)
        self.feed = self.rt.feed(self._batch, self.step)
        try:
            return self._loop(interrupt, bar, log_every, token_budget)
        finally:
            self.feed.close()
            self.feed = None
            bar.close()

    def _loop(self, interrupt: Interrupt, bar: Progress, log_every: int,
              token_budget: Any) -> dict[str, Any]:
        last_row: dict[str, Any] = {}
        last_log = time.time()
        tokens_at_log = self.tokens
        while self.step < self.total or (token_budget is not None
                                         and self.tokens < int(token_budget)):
            if self._stop_asked(interrupt):
                self.save_checkpoint()
                raise RunStopped("interrupted", f"interrupted ({interrupt.signal}) at step "
                                 f"{self.step} (a checkpoint was saved; run again to resume)")
            self.window_labels += self.step_once()
            budget_done = token_budget is not None and self.tokens >= int(token_budget)
            eval_now = (self.step % self.eval_every == 0 or self.step == self.total
                        or budget_done)
            if self.step % log_every == 0 or eval_now:
                train_loss = self.read_train_loss(self.window_labels)
                self.window_labels = 0
                now = time.time()
                tps = (self.tokens - tokens_at_log) / max(now - last_log, 1e-9)
                last_log, tokens_at_log = now, self.tokens
                self._record_training(train_loss, tps)
                bar.update(self.step, train_loss, tps)
            if eval_now:
                values = self.evaluate()
                last_row = self.record(values)
                if M.stop_when(self.train.get("stop_when"), values) or budget_done:
                    break
            if self.step < self.total and self._checkpoint_due():
                self.save_checkpoint()
        return last_row

    def _stop_asked(self, interrupt: Interrupt) -> bool:
        """Whether a signal asks the run to stop here. Every rank must stop at the same step
        (a sharded checkpoint is a collective), so several processes agree at log boundaries,
        one all-reduce each; one process stops at the next step."""
        return self._agreed(interrupt.requested)

    def _agreed(self, flag: bool) -> bool:
        """A host decision every rank takes at the same step: as is with one process, else
        at log boundaries, true when any rank's flag is."""
        if self.rt.world == 1 or self.step % self.log_every:
            return flag if self.rt.world == 1 else False
        return self.rt.read(self.rt.all_sum(self.rt.zero() + float(flag))) > 0

    # ------------------------------------------------------------ the public interface
    # Note [One training loop]: `run` above and the strategies that drive runs themselves (a CBS
    # race advancing its learning rates in lockstep) share these steps; nothing outside reaches
    # into the step's internals.
    def step_once(self) -> int:
        """One optimizer step (circuits measured on their schedule); its label count."""
        _, labels = self.train_step(self.step)
        self.step += 1
        if self.circuits is not None:
            self.circuits.on_step(self.step)
        return labels

    def read_train_loss(self, labels: int) -> float:
        """The mean token loss since the last read: one host read; a non-finite loss stops the
        run (``RunStopped("failed")``)."""
        window, self.window = self.window, None
        if self.generic:  # (summed loss, summed weight)
            total = self.rt.read(self.rt.all_sum(window[0]))
            weight = self.rt.read(self.rt.all_sum(window[1]))
            loss = total / weight if weight > 0 else float("nan")
        else:
            loss = self.rt.read(self.rt.all_sum(window)) / max(labels, 1)
        if not math.isfinite(loss):
            raise RunStopped("failed", f"the training loss became {loss} at step {self.step}; "
                             "lower the learning rate or clip gradients")
        self.last_train_loss = loss
        return loss

    def _record_training(self, loss: float, rate: float) -> None:
        """A training row of the learning curve (Note [Metrics rows]): every ``log_every``
        steps, beside the evaluation rows."""
        if not self.rt.is_main:
            self.grad_norm = None
            return
        row = {"kind": "train", "step": self.step, self.unit: self.tokens,
               "time": round(time.time() - self.started, 3),
               "lr": self.opt.param_groups[0]["lr"], "train_loss": loss,
               f"{self.unit}_per_s": round(rate, 1)}
        if self.grad_norm is not None:
            row["grad_norm"] = self.rt.read(self.grad_norm)
            self.grad_norm = None
        self.log.append(row)

    def record(self, values: dict[str, float]) -> dict[str, Any]:
        """The metrics row of this step (logged by the main process, shown by ``on_eval``)."""
        row = {"step": self.step, self.unit: self.tokens,
               "time": round(time.time() - self.started, 3),
               "lr": self.opt.param_groups[0]["lr"],
               **({"train_loss": self.last_train_loss} if self.last_train_loss is not None
                  else {}), **values}
        if self.rt.is_main:
            self.log.append(row)
            if self.on_eval is not None:
                self.on_eval(row)
        return row

    def advance(self, steps: int) -> dict[str, Any]:
        """``steps`` optimizer steps, one read of the training loss, then an evaluation: the
        row, logged. Raises ``RunStopped`` when the loss is not finite."""
        labels = sum(self.step_once() for _ in range(steps))
        self.read_train_loss(labels)
        return self.record(self.evaluate())

    def gradient_sq_norm(self, batch: int, draws: int = 4) -> float:
        """The mean squared gradient norm over ``draws`` fresh batches of ``batch`` sequences
        (the gradient noise scale's ingredient); the optimizer state is untouched."""
        import torch

        total = 0.0
        with torch.enable_grad():
            for i in range(draws):
                if self.generic:
                    b = self.rt.to_device(dict(self.data.train_batch(10**6 + 97 * i + batch,
                                                                     batch)))
                else:
                    b = self.rt.to_device(self.data.train_batch(10**6 + 97 * i + batch, batch))
                self.opt.zero_grad(set_to_none=True)
                summed, weight = self.objective(self.model, b)[:2]
                loss = summed.float() / weight
                loss.backward()
                sq = [(p.grad.float() ** 2).sum() for p in self.trainable if p.grad is not None]
                total += self.rt.read(sum(sq)) if sq else 0.0
        self.opt.zero_grad(set_to_none=True)
        return total / draws

    def _checkpoint_due(self) -> bool:
        """Note [Checkpoint schedule]; after the step's evaluation row, which it then covers."""
        if self.ckpt_every:
            return self.step % self.ckpt_every == 0
        return self._agreed(time.time() - self._last_ckpt_time >= CHECKPOINT_SECONDS)

    def save_final(self) -> None:
        """final/model in Hugging Face format (adapters merged) and final/adapter in peft's."""
        model = self.rt.host_model(self.model_raw)  # a collective when sharded
        if not self.rt.is_main:
            return
        final = self.path / "final"
        tmp = self.path / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if hasattr(model, "peft_config"):
            model.save_pretrained(str(tmp / "adapter"))
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model = models.unpadded(model)
        if self.vocab is not None and hasattr(model, "generation_config"):
            models.set_special_tokens(model, self.vocab)
        self._save_model(model, tmp / "model")
        import json

        if self.vocab_cfg is not None:
            (tmp / "model" / models.VOCAB_FILE).write_text(json.dumps(self.vocab_cfg, indent=2))
            # a tokenizer AutoTokenizer loads, so transformers' pipelines work on the directory
            self.vocab.hf_tokenizer().save_pretrained(str(tmp / "model"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

__all__ = ["CHECKPOINT_SECONDS", "CircuitWatch", "Interrupt", "RunStopped", "StageError",
           "Trainer", "stage"]
