"""The fields of experiments, train blocks, sweeps and searches: types, defaults and docs."""

from __future__ import annotations

from typing import Final

from specc.catalogue import types as T
from specc.catalogue.components import REQUIRED, P, Param

# Note [Rewrites]: specc/compiler/rewrites.py decides which apply to a run.
REWRITES: Final = ("pad_vocab", "chunked_ce", "fit_batch", "compile")

_POS_INT = {"lo": 1}

EXPERIMENT: Final[tuple[Param, ...]] = (
    P("model", T.Kind("model"), REQUIRED, "the model trained (default: the one declared)"),
    P("data", T.Kind("data"), REQUIRED, "the data trained on (default: the one declared)"),
    P("objective", T.optional(T.Kind("objective")), "none",
      "what training minimizes (none: the one declared, else the model's: next_token for "
      "causal LMs, cross_entropy for classifiers, mse for regressors)"),
    P("policy", T.Kind("policy"), "full", "how the model is adapted"),
    P("circuit", T.optional(T.Kind("circuit")), "none", "the circuit measured"),
    P("metrics", T.ListOf(T.Kind("metric")), "[loss]", "what is evaluated"),
    P("report", T.ListOf(T.Kind("report")), "[loss_curve, metric_table]", "what is reported"),
    P("trackers", T.ListOf(T.Kind("tracker")), "[]",
      "experiment trackers the runs log to (tensorboard, mlflow, wandb; `specc run --tracker` "
      "adds one); not part of a run's hash"),
    P("backend", T.Enum(("cpu", "cuda", "xla", "auto")), "auto", "where it runs"),
    P("seed", T.INT, "0", "random seed: initialization and data order (the data's own seed "
      "fixes its content)", lo=0),
)

TRAIN: Final[tuple[Param, ...]] = (
    P("optimizer", T.Kind("optimizer"), "adamw()", "the optimizer"),
    P("schedule", T.Kind("schedule"), "constant()", "the learning-rate schedule"),
    P("batch", T.INT, "32", "sequences per optimizer step", **_POS_INT),
    P("steps", T.optional(T.INT), "none",
      "budget in optimizer steps (0: evaluation only: a baseline, a pretrained model)", lo=0),
    P("epochs", T.optional(T.FLOAT), "none", "budget in passes over the training split", lo=0,
      lo_open=True),
    P("tokens", T.optional(T.INT), "none", "budget in training tokens", **_POS_INT),
    P("eval_every", T.INT, "0", "evaluate every N steps (0: at the end only)", lo=0),
    P("log_every", T.INT, "10", "log the training loss every N steps", **_POS_INT),
    P("grad_clip", T.optional(T.FLOAT), "1.0", "clip the gradient norm (none: off)", lo=0,
      lo_open=True),
    P("accumulate", T.Union_((T.Enum(("auto",)), T.INT)), "auto",
      "micro-batches per step, token-normalized (auto: the fewest whose step fits the device's "
      "memory, the fit_batch rewrite; 1 when rewrites are off)", **_POS_INT),
    P("memory", T.optional(T.FLOAT), "none",
      "GiB of device memory a step may use, for accumulate = auto (none: the device's free "
      "memory)", lo=0, lo_open=True),
    P("ewa", T.ListOf(T.FLOAT), "[]", "decays of exponential weight averages, evaluated too",
      lo=0, hi=1),
    P("precision", T.Enum(("auto", "fp32", "bf16", "fp16")), "auto",
      "auto: bf16 autocast on CUDA/TPU, fp32 on CPU"),
    P("compile", T.Union_((T.Enum(("auto",)), T.BOOL)), "auto",
      "torch.compile the model (auto: on CUDA, the compile rewrite; true forces it on CPU)"),
    P("devices", T.INT, "1", "devices per node (data parallel when > 1)", **_POS_INT),
    P("nodes", T.INT, "1", "machines the run spans, each running `specc run SPEC --rdzv "
      "HOST:PORT` (torchrun's c10d rendezvous; the store must be shared)", **_POS_INT),
    P("strategy", T.Enum(("auto", "single", "ddp", "fsdp")), "auto",
      "how devices share work: ddp replicates the model; fsdp shards parameters, gradients and "
      "optimizer state (FSDP2's fully_shard per block on CPU/CUDA, FSDPv2 on XLA); auto is ddp"),
    P("shapes", T.Enum(("auto", "dynamic", "fixed", "buckets")), "auto",
      "sequence shapes: auto is dynamic on CPU/CUDA and fixed on XLA"),
    P("buckets", T.ListOf(T.INT), "[]",
      "pad lengths for shapes = buckets (empty: four evenly spaced up to the longest sequence)",
      lo=1),
    P("drop_last", T.BOOL, "false",
      "an epoch budget drops the final partial batch instead of wrapping (forced on XLA)"),
    P("attention", T.Enum(("auto", "sdpa", "eager", "flash")), "auto", "attention kernel"),
    P("stop_when", T.ANY, "none", "stop early when a metric condition holds (loss <= 2.0)"),
    P("checkpoint_every", T.INT, "0", "save a checkpoint every N steps (0: eval_every)", lo=0),
    P("rewrites", T.optional(T.Union_((T.Enum(("auto",)), T.ListOf(T.Enum(REWRITES))))), "auto",
      "the compiler's rewrites for speed and memory (specc explain SPEC train.rewrites): auto "
      "applies every one that keeps the mathematics, none is the baseline, or a list of them"),
)

GRID: Final[tuple[Param, ...]] = (
    P("retry", T.Kind("retry"), "retries()", "how failed runs are retried"),
    P("workers", T.INT, "1", "local `specc run` processes sharing the runs (each trained once)",
      **_POS_INT),
)

CBS: Final[tuple[Param, ...]] = (
    P("reference", T.INT, REQUIRED, "the reference batch size", **_POS_INT),
    P("target", T.Union_((T.FLOAT, T.ListOf(T.FLOAT))), REQUIRED,
      "target held-out loss(es): a number or loss_at(...)"),
    P("overhead", T.FRACTION, "20%", "B* is where steps exceed linear scaling by this much",
      lo=0, lo_open=True),
    P("max_tokens", T.INT, REQUIRED, "token budget per run", **_POS_INT),
    P("fit", T.Enum(("inverse", "free_exponent")), "inverse", "S(B) = a + b/B, or b/B^c"),
    P("retry", T.Kind("retry"), "retries()", "how failed runs are retried"),
    P("workers", T.INT, "1", "local `specc run` processes sharing the races (each raced once)",
      **_POS_INT),
)

OPTUNA: Final[tuple[Param, ...]] = (
    P("objective", T.ANY, REQUIRED, "maximize/minimize a metric, or a list of them"),
    P("trials", T.INT, REQUIRED, "exact number of finished trials", **_POS_INT),
    P("sampler", T.Kind("sampler"), "tpe()", "the sampler"),
    P("pruner", T.Kind("pruner"), "median()", "the pruner"),
    P("storage", T.STR, '"runs/{experiment}.journal"', "journal file or postgresql:// URL"),
    P("workers", T.INT, "1", "local workers", **_POS_INT),
    P("timeout", T.optional(T.INT), "none", "seconds before no new trial starts", **_POS_INT),
    P("retry", T.Kind("retry"), "retries()", "how failed trials are retried"),
)

BLOCKS: Final[dict[tuple[str, str | None], tuple[Param, ...]]] = {
    ("train", None): TRAIN,
    ("sweep", "grid"): GRID,
    ("sweep", "cbs"): CBS,
    ("search", "optuna"): OPTUNA,
}

DECL_KINDS: Final = ("model", "data", "objective", "policy", "circuit", "metric", "optimizer",
                     "schedule", "vocab")
CHECKPOINT_UNITS: Final = ("steps", "tokens", "epochs")


def field(params: tuple[Param, ...], name: str) -> Param | None:
    return next((p for p in params if p.name == name), None)
