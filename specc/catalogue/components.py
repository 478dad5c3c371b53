"""Torch-free signatures of every component: name, kind, typed parameters, defaults, docs."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Final

import attrs

from specc.catalogue import types as T

REQUIRED: Final = "<required>"


@attrs.frozen
class Param:
    """One parameter. ``default`` is .exp source text (or REQUIRED); ``lo``/``hi`` bound numbers."""

    name: str
    type: T.Type
    default: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: the value must be strictly above ``lo``
    hi_open: bool = False  # True: the value must be strictly below ``hi``


@attrs.frozen
class Origin:
    """Where a component is defined: ``specc`` (the built-ins), a component file imported with
    ``import python`` (``path``, its ``sha256``) or an installed package's module (``module``,
    ``dist`` with its version). ``line`` is the builder's line in ``path``."""

    provider: str
    path: str = ""
    line: int = 0
    sha256: str = ""
    module: str = ""
    dist: str = ""
    function: str = ""

    def where(self) -> str:
        if not self.path:
            return self.provider
        return f"{self.path}:{self.line}" if self.line else self.path


BUILTIN = Origin("specc")


@attrs.frozen
class Component:
    """A catalogue entry. ``provides`` are the capabilities it offers (a model's ``causal_lm``,
    a data component's ``tokens``); ``requires`` what the run's model or data must provide."""

    name: str
    kind: str
    doc: str
    params: tuple[Param, ...] = attrs.field(converter=tuple, default=())
    variadic: Param | None = None  # e.g. choice(4, 8, 16): any number of positional values
    members: tuple[tuple[str, str], ...] = attrs.field(converter=tuple, default=())
    provides: tuple[str, ...] = attrs.field(converter=tuple, default=())
    requires: tuple[str, ...] = attrs.field(converter=tuple, default=())
    returns: str | None = None  # for compile-time functions: the kind of value they give
    origin: Origin = BUILTIN

    @property
    def qualified(self) -> str:
        return f"{self.origin.provider}.{self.name}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def P(name: str, type_: T.Type, default: str = REQUIRED, doc: str = "", **kw: object) -> Param:
    return Param(name, type_, default, doc, **kw)  # type: ignore[arg-type]


_INT, _FLOAT, _STR, _BOOL, _FRAC = T.INT, T.FLOAT, T.STR, T.BOOL, T.FRACTION
_SEED = P("seed", _INT, "0", "random seed", lo=0)
_SPLITS = (("train", "split"), ("test", "split"), ("validation", "split"))
_PAIRS = (*_SPLITS, ("circuit", "pairs"))
_VOCAB = T.Kind("vocab")
_TOKENS = ("tokens",)
_LM = ("causal_lm",)
_MODEL_SHAPE = (
    P("layers", _INT, "12", "number of transformer blocks", lo=1),
    P("heads", _INT, "12", "attention heads per block", lo=1),
    P("width", _INT, "768", "hidden size (d_model); must divide by heads", lo=1),
    P("context", _INT, "1024", "maximum sequence length", lo=1),
    P("vocab", _VOCAB, REQUIRED, "the vocabulary: numbers(0..199), bytes or tokenizer(path)"),
    P("mlp_ratio", _INT, "4", "MLP hidden size as a multiple of width", lo=1),
    P("dropout", _FLOAT, "0.0", "dropout probability", lo=0, hi=1),
)
_LORA_TARGETS = T.Union_((T.Kind("targets"), T.ListOf(_STR)))
_RANK = P("rank", _INT, "8", "LoRA rank r", lo=1)
_CIRCUIT_DATA = P("data", T.Kind("pairs"), REQUIRED, "clean/corrupted prompt pairs (task.circuit)")
_CIRCUIT_METRIC = P("metric", T.Kind("circuit_metric"), "kl_last_token", "what the scores explain")
_KEEP = P("keep", T.Union_((_FRAC, _INT)), "5%", "edges kept: a fraction (5%) or a count", lo=0,
          lo_open=True)
_SEL = P("select", T.Enum(("top", "threshold", "greedy")), "top", "how edges are chosen")
_SAMPLER = (_SEED,)
_PRUNE_WARMUP = P("warmup_steps", _INT, "0", "steps before a trial can be pruned", lo=0)

CATALOGUE: Final[tuple[Component, ...]] = (
    # models ------------------------------------------------------------------------------
    Component("gpt2", "model", "GPT-2-like causal LM (sequential attention then MLP), built from "
              "a config", _MODEL_SHAPE, provides=("causal_lm",)),
    Component("pythia", "model", "GPT-NeoX/Pythia-like causal LM (parallel attention and MLP, "
              "rotary)", (*_MODEL_SHAPE, P("rotary_pct", _FRAC, "25%", "share of head dims "
                                           "with rotary embeddings", lo=0, hi=1)),
              provides=("causal_lm",)),
    Component("llama", "model", "Llama-like causal LM (RMSNorm, SwiGLU, rotary, grouped KV)",
              (*_MODEL_SHAPE, P("kv_heads", T.optional(_INT), "none",
                                "key/value heads (none: same as heads)", lo=1),
               P("rope_theta", _FLOAT, "10000.0", "rotary base", lo=0, lo_open=True)),
              provides=("causal_lm",)),
    Component("pretrained", "model", "a Hugging Face model from a local directory or a hub id "
              "(read from the local cache, never downloaded at run time)",
              (P("source", _STR, REQUIRED, "a local directory or a hub id"),
               P("revision", T.optional(_STR), "none", "hub revision")), provides=("causal_lm",)),
    Component("checkpoint", "model", "the final checkpoint of another experiment's run",
              (P("experiment", T.Kind("experiment"), REQUIRED, "the experiment that trains it"),
               P("run", T.optional(_STR), "none", "a run hash (none: the experiment's only run)")),
              provides=("causal_lm",)),
    # vocabularies --------------------------------------------------------------------------
    Component("numbers", "vocab", "numbers as single tokens plus operators and specials",
              (P("values", T.RangeT(), "0..999", "the numbers that get a token"),)),
    Component("bytes", "vocab", "the 256 byte values plus specials"),
    Component("tokenizer", "vocab", "a Hugging Face tokenizer from a local directory",
              (P("path", _STR, REQUIRED, "directory holding tokenizer.json or the like"),)),
    # data ------------------------------------------------------------------------------------
    Component("arithmetic", "data", "two-operand arithmetic prompts 'a op b =' with the answer",
              (P("ops", T.ListOf(T.Enum(("+", "-", "*", "/"))), '["+", "-"]', "operators"),
               P("max", _INT, "100", "operands are drawn from 0..max-1", lo=2),
               P("train", _INT, "4500", "training examples", lo=1),
               P("test", _INT, "500", "test examples", lo=1),
               P("corrupt", T.optional(T.Kind("corruption")), "none",
                 "how clean prompts are corrupted for circuit pairs"),
               _SEED), members=_PAIRS, provides=_TOKENS),
    Component("sequence", "data", "continue an arithmetic or geometric sequence",
              (P("kind", T.Enum(("arithmetic", "geometric")), "arithmetic", "sequence type"),
               P("length", _INT, "4", "terms shown", lo=2), P("max", _INT, "300",
               "largest start term", lo=2), P("train", _INT, "4500", "training examples", lo=1),
               P("test", _INT, "500", "test examples", lo=1),
               P("corrupt", T.optional(T.Kind("corruption")), "none", "corruption"), _SEED),
              members=_PAIRS, provides=_TOKENS),
    Component("lcm", "data", "least common multiple of two numbers",
              (P("max", _INT, "100", "operand bound", lo=2),
               P("train", _INT, "4500", "training examples", lo=1),
               P("test", _INT, "500", "test examples", lo=1),
               P("corrupt", T.optional(T.Kind("corruption")), "none", "corruption"), _SEED),
              members=_PAIRS, provides=_TOKENS),
    Component("linear_fn", "data", "evaluate y = a*x + b", (
        P("max", _INT, "20", "coefficient bound", lo=2),
        P("train", _INT, "4500", "training examples", lo=1),
        P("test", _INT, "500", "test examples", lo=1),
        P("corrupt", T.optional(T.Kind("corruption")), "none", "corruption"), _SEED),
              members=_PAIRS, provides=_TOKENS),
    Component("compositional", "data", "compositional task (x op1 y) op2 z", (
        P("inner", T.ListOf(T.Enum(("+", "-"))), '["+", "-"]', "inner operators"),
        P("outer", T.ListOf(T.Enum(("+", "-", "*", "/"))), '["*"]',
          "outer operators (/ is exact division)"),
        P("max", _INT, "20", "operand bound", lo=2),
        P("train", _INT, "4500", "training examples", lo=1),
        P("test", _INT, "500", "test examples", lo=1),
        P("corrupt", T.optional(T.Kind("corruption")), "none", "corruption"), _SEED),
              members=_PAIRS, provides=_TOKENS),
    Component("zipf_ngrams", "data", "an infinite synthetic token stream with power-law n-gram "
              "structure", (P("vocab", _INT, "256", "token count", lo=2),
                            P("rules", _INT, "4096", "n-gram rules", lo=1),
                            P("alpha", _FLOAT, "1.1", "Zipf exponent", lo=0, lo_open=True),
                            P("order", _INT, "3", "n-gram order", lo=1),
                            P("heldout", _INT, "64", "held-out sequences", lo=1), _SEED),
              members=_SPLITS, provides=_TOKENS),
    Component("text_files", "data", "local text files matched by a glob",
              (P("glob", _STR, REQUIRED, "files, relative to the spec"),
               P("tokenizer", _VOCAB, "bytes", "how text becomes tokens"),
               P("test", _FRAC, "5%", "held-out share", lo=0, hi=1)), members=_SPLITS,
              provides=_TOKENS),
    Component("jsonl", "data", "a local JSONL file through `datasets`",
              (P("path", _STR, REQUIRED, "the file"), P("field", _STR, '"text"', "text field"),
               P("tokenizer", _VOCAB, "bytes", "tokenizer"),
               P("test", _FRAC, "5%", "held-out share", lo=0, hi=1)), members=_SPLITS,
              provides=_TOKENS),
    Component("csv", "data", "a local CSV file through `datasets`",
              (P("path", _STR, REQUIRED, "the file"), P("field", _STR, '"text"', "text column"),
               P("tokenizer", _VOCAB, "bytes", "tokenizer"),
               P("test", _FRAC, "5%", "held-out share", lo=0, hi=1)), members=_SPLITS,
              provides=_TOKENS),
    Component("parquet", "data", "a local Parquet file through `datasets`",
              (P("path", _STR, REQUIRED, "the file"), P("field", _STR, '"text"', "text column"),
               P("tokenizer", _VOCAB, "bytes", "tokenizer"),
               P("test", _FRAC, "5%", "held-out share", lo=0, hi=1)), members=_SPLITS,
              provides=_TOKENS),
    Component("hf_dataset", "data", "a dataset by hub id, from the local cache only",
              (P("id", _STR, REQUIRED, "hub id"), P("field", _STR, '"text"', "text column"),
               P("tokenizer", _VOCAB, "bytes", "tokenizer"),
               P("split", _STR, '"train"', "split to read")), members=_SPLITS, provides=_TOKENS),
    # corruptions -----------------------------------------------------------------------------
    Component("flip_operator", "corruption", "swap the operator (+ with -, * with /)"),
    Component("random_operand", "corruption", "replace the first operand by another of the "
              "same token length"),
    Component("shuffle_operands", "corruption", "swap the two operands"),
    # policies ----------------------------------------------------------------------------------
    Component("full", "policy", "fine-tune every parameter"),
    Component("freeze", "policy", "train everything except modules matching the patterns",
              (P("patterns", T.ListOf(_STR), REQUIRED, "regular expressions of module names"),)),
    Component("lora", "policy", "LoRA adapters through peft",
              (_RANK, P("alpha", T.optional(_FLOAT), "none", "scale numerator (none: 2*rank)",
                        lo=0, lo_open=True),
               P("dropout", _FLOAT, "0.0", "dropout on the adapter input", lo=0, hi=1),
               P("targets", _LORA_TARGETS, "all_linear", "modules that get adapters"),
               P("rank_pattern", T.ListOf(T.TupleOf((_STR, _INT))), "[]",
                 "per-module ranks: [(regex, rank), ...]"),
               P("alpha_pattern", T.ListOf(T.TupleOf((_STR, _FLOAT))), "[]",
                 "per-module alphas: [(regex, alpha), ...]"))),
    Component("adalora", "policy", "AdaLoRA through peft (budgeted rank allocation)",
              (P("init_rank", _INT, "12", "starting rank", lo=1),
               P("target_rank", _INT, "8", "average rank after pruning", lo=1),
               P("alpha", _FLOAT, "32.0", "scale numerator", lo=0, lo_open=True),
               P("tinit", _INT, "0", "steps before budget pruning", lo=0),
               P("tfinal", _INT, "0", "steps of final fine-tuning", lo=0),
               P("delta_t", _INT, "1", "steps between budget updates", lo=1),
               P("targets", _LORA_TARGETS, "all_linear", "modules that get adapters"))),
    Component("circuit_lora", "policy", "circuit-aware LoRA: higher rank on the layers whose "
              "circuit edges change most in a probe fine-tune",
              (P("probe", T.Kind("policy"), "lora(rank = 2)", "the cheap probe fine-tune"),
               P("probe_epochs", _FLOAT, "2", "epochs of the probe", lo=0, lo_open=True),
               P("critical", T.Kind("selector"), "top_layers(5)", "which layers are critical"),
               P("rank_other", _INT, "16", "rank elsewhere", lo=1),
               P("rank_critical", _INT, "64", "rank on critical layers", lo=1),
               P("alpha_ratio", _FLOAT, "2.0", "alpha = ratio * rank", lo=0, lo_open=True),
               P("allocation", T.Enum(("critical", "exponential")), "critical",
                 "two-level ranks, or the exponential-percentile allocation"),
               P("include_input", _BOOL, "true", "count input-node edges to layer 0"),
               P("normalize", _BOOL, "false", "normalize both circuits' scores"),
               P("targets", _LORA_TARGETS, "all_linear", "modules that get adapters"),
               P("subtasks", T.ListOf(T.Kind("data")), "[]",
                 "compositional tasks: the union of these subtasks' circuits (mean score on "
                 "shared edges, truncated to the composite circuit's edge count) picks the "
                 "critical layers, instead of the task's own circuit"))),
    Component("random_layers_lora", "policy", "control: critical layers chosen at random",
              (P("count", _INT, "5", "number of random critical layers", lo=1),
               P("rank_other", _INT, "16", "rank elsewhere", lo=1),
               P("rank_critical", _INT, "64", "rank on chosen layers", lo=1),
               P("alpha_ratio", _FLOAT, "2.0", "alpha = ratio * rank", lo=0, lo_open=True),
               P("targets", _LORA_TARGETS, "all_linear", "modules that get adapters"), _SEED)),
    Component("all_linear", "targets", "every linear module of every block (LM head excluded)"),
    Component("attention", "targets", "the attention projections"),
    Component("mlp", "targets", "the MLP projections"),
    Component("top_layers", "selector", "the k layers with the largest edge change",
              (P("k", _INT, "5", "how many layers", lo=1),)),
    Component("above_mean", "selector", "layers whose change exceeds mean + std_mult * std",
              (P("std_mult", _FLOAT, "1.0", "standard deviations", lo=0),)),
    # optimizers and schedules: specc/components/training.py (specc.api builders) ------------
    # circuits ----------------------------------------------------------------------------------
    Component("eap", "circuit", "edge attribution patching (one gradient)",
              (_CIRCUIT_DATA, _CIRCUIT_METRIC, _KEEP, _SEL)),
    Component("eap_ig", "circuit", "EAP with integrated gradients on interpolated embeddings",
              (_CIRCUIT_DATA, _CIRCUIT_METRIC, P("steps", _INT, "5", "interpolation steps m",
                                                 lo=1),
               P("endpoints", T.Enum(("paper", "left")), "paper",
                 "paper: alphas 1..m / m; left: 0..m-1 / m"), _KEEP, _SEL)),
    Component("exact_patching", "circuit", "patch every edge (ground truth; small models only)",
              (_CIRCUIT_DATA, _CIRCUIT_METRIC, _KEEP, _SEL)),
    Component("kl_last_token", "circuit_metric", "KL to the clean distribution at the last token"),
    Component("logit_diff", "circuit_metric", "clean minus corrupted answer logit"),
    Component("answer_prob", "circuit_metric", "probability of the clean answer"),
    # metrics -----------------------------------------------------------------------------------
    Component("loss", "metric", "the objective on held-out data (mean token cross-entropy for "
              "language models)",
              (P("split", T.optional(T.Kind("split")), "none", "split (none: held-out)"),)),
    Component("perplexity", "metric", "exp of the loss",
              (P("split", T.optional(T.Kind("split")), "none", "split (none: held-out)"),),
              requires=_LM),
    Component("token_accuracy", "metric", "share of next tokens predicted exactly",
              (P("split", T.optional(T.Kind("split")), "none", "split"),), requires=_LM),
    Component("exact_match", "metric", "share of generated answers that match exactly",
              (P("split", T.Kind("split"), REQUIRED, "the split to evaluate (task.test)"),
               P("limit", T.optional(_INT), "none", "examples evaluated (none: all)", lo=1)),
              requires=_LM),
    Component("node_jaccard", "metric", "node Jaccard of the circuit with another's",
              (P("circuit", T.Kind("circuit"), REQUIRED, "the measured circuit"),
               P("other", T.Union_((T.Kind("model"), T.Kind("circuit"))), REQUIRED,
                 "what to compare with"))),
    Component("edge_jaccard", "metric", "edge Jaccard of the circuit with another's",
              (P("circuit", T.Kind("circuit"), REQUIRED, "the measured circuit"),
               P("other", T.Union_((T.Kind("model"), T.Kind("circuit"))), REQUIRED,
                 "what to compare with"))),
    Component("faithfulness", "metric", "metric recovered by the circuit alone (patching every "
              "edge outside it): `.paper_percent`, `.normalized`, `.baseline`, `.circuit`",
              (P("circuit", T.Kind("circuit"), REQUIRED, "the circuit"),)),
    # search ------------------------------------------------------------------------------------
    Component("tpe", "sampler", "Optuna TPE sampler", _SAMPLER),
    Component("random", "sampler", "random sampling", _SAMPLER),
    Component("cmaes", "sampler", "CMA-ES", _SAMPLER),
    Component("gp", "sampler", "Gaussian-process Bayesian optimisation", _SAMPLER),
    Component("grid", "sampler", "exhaustive grid over choice() axes", _SAMPLER),
    Component("median", "pruner", "prune below the median of earlier trials at the same step",
              (_PRUNE_WARMUP, P("startup_trials", _INT, "5", "trials before pruning", lo=0))),
    Component("percentile", "pruner", "prune below a percentile",
              (P("percentile", _FLOAT, "25.0", "percentile", lo=0, hi=100), _PRUNE_WARMUP)),
    Component("successive_halving", "pruner", "asynchronous successive halving",
              (P("min_resource", _INT, "1", "smallest budget", lo=1),
               P("reduction_factor", _INT, "4", "reduction factor", lo=2))),
    Component("hyperband", "pruner", "Hyperband",
              (P("min_resource", _INT, "1", "smallest budget", lo=1),
               P("max_resource", T.optional(_INT), "none", "largest budget", lo=1),
               P("reduction_factor", _INT, "3", "reduction factor", lo=2))),
    Component("no_pruning", "pruner", "never prune"),
    Component("retries", "retry", "retry policy for failed trials",
              (P("max", _INT, "2", "retries per trial", lo=0),
               P("on", T.ListOf(T.Enum(("exception", "nan", "oom", "killed"))),
                 '["killed", "oom"]', "failure classes that are retried"))),
    Component("loguniform", "distribution", "log-uniform float in [lo, hi]",
              (P("lo", _FLOAT, REQUIRED, "low end", lo=0, lo_open=True),
               P("hi", _FLOAT, REQUIRED, "high end", lo=0, lo_open=True))),
    Component("uniform", "distribution", "uniform float in [lo, hi]",
              (P("lo", _FLOAT, REQUIRED, "low end"), P("hi", _FLOAT, REQUIRED, "high end"))),
    Component("int", "distribution", "integer in [lo, hi]",
              (P("lo", _INT, REQUIRED, "low end"), P("hi", _INT, REQUIRED, "high end"),
               P("step", _INT, "1", "step", lo=1), P("log", _BOOL, "false", "log scale"))),
    Component("choice", "distribution", "one of the given values",
              variadic=P("values", T.ANY, REQUIRED, "the choices")),
    # reports -----------------------------------------------------------------------------------
    Component("loss_curve", "report", "loss against steps and tokens"),
    Component("metric_table", "report", "final metrics per run"),
    Component("cbs_curve", "report", "S(B) relative to linear scaling, B* marked"),
    Component("cbs_fit", "report", "the S(B) = a + b/B fit and B* per target"),
    Component("cbs_scaling", "report", "B* against model and data size"),
    Component("circuit_graph", "report", "a drawing of the circuit"),
    Component("rank_per_layer", "report", "LoRA rank per layer"),
    Component("edge_change", "report", "edge change per layer"),
    # compile-time functions --------------------------------------------------------------------
    Component("params", "function", "parameter count of a model, or trainable count of a policy "
              "on the experiment's model", (P("of", T.Union_((T.Kind("model"), T.Kind("policy"))),
                                              REQUIRED, "model or policy"),), returns="int"),
    Component("chinchilla", "function", "compute-optimal tokens: 20 x non-embedding params",
              (P("model", T.Kind("model"), REQUIRED, "the model"),), returns="int"),
    Component("flops", "function", "training FLOPs: 6 x params x tokens",
              (P("model", T.Kind("model"), REQUIRED, "the model"),
               P("tokens", _INT, REQUIRED, "training tokens", lo=0)), returns="int"),
    Component("round", "function", "the nearest integer (halves away from zero)",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("floor", "function", "the largest integer not above x",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("ceil", "function", "the smallest integer not below x",
              (P("x", T.FLOAT, REQUIRED, "a number"),), returns="int"),
    Component("loss_at", "function", "held-out loss of a sweep's reference run at a token count "
              "(known at run time)", (P("batch", _INT, REQUIRED, "the reference batch", lo=1),
                                      P("tokens", _INT, REQUIRED, "tokens seen", lo=1)),
              returns="float"),
)

BACKENDS: Final = ("cpu", "cuda", "xla", "auto")

# Note [Default objective]: an experiment without `objective = ...` trains with the objective its
# model's capabilities imply; `next_token` for causal LMs reproduces the language-model loop.
DEFAULT_OBJECTIVES: Final = (("causal_lm", "next_token"), ("classifier", "cross_entropy"),
                             ("regressor", "mse"))


def default_objective(provides: tuple[str, ...]) -> str | None:
    return next((obj for cap, obj in DEFAULT_OBJECTIVES if cap in provides), None)

# The hand-written entries above are the built-ins that predate `specc.api`; components written
# with `@component` (the built-in objectives and generic metrics in `specc.components.generic`,
# component files imported with `import python`, installed plug-ins) are read from their
# builders' signatures by `specc.catalogue.pyread` and join through a Registry.
BY_NAME: Final[dict[str, Component]] = {c.name: c for c in CATALOGUE}
KINDS: Final[tuple[str, ...]] = tuple(sorted({c.kind for c in CATALOGUE} | {"objective"}))


@attrs.frozen
class Registry:
    """The components a compilation sees: the built-ins and every plug-in, by name. A name that
    two providers define is ambiguous (``lookup`` gives None; ``collisions`` names both) and is
    reached by its qualified form, ``provider.name``."""

    components: tuple[Component, ...] = attrs.field(converter=tuple)
    by_name: dict[str, list[Component]] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        by: dict[str, list[Component]] = {}
        for c in self.components:
            by.setdefault(c.name, []).append(c)
            by.setdefault(c.qualified, []).append(c)
        object.__setattr__(self, "by_name", by)

    def lookup(self, name: str, kind: str | None = None) -> Component | None:
        found = self.by_name.get(name) or []
        if kind is not None and len(found) > 1:
            found = [c for c in found if c.kind == kind]
        return found[0] if len(found) == 1 else None

    def providers(self, name: str) -> list[Component]:
        return list(self.by_name.get(name, ()))

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self.components if c.kind == kind]


_BUILTIN_REGISTRY: list[Registry] = []
_ACTIVE: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("specc_registry",
                                                                          default=None)


def builtin_registry() -> Registry:
    """The built-ins: the table above plus every `specc.components` entry point that the specc
    distribution itself registers (read, never imported)."""
    if not _BUILTIN_REGISTRY:
        from specc.catalogue.pyread import builtin_components

        _BUILTIN_REGISTRY.append(Registry((*CATALOGUE, *builtin_components())))
    return _BUILTIN_REGISTRY[0]


def active() -> Registry:
    return _ACTIVE.get() or builtin_registry()


@contextlib.contextmanager
def using(registry: Registry) -> Iterator[None]:
    """Make ``registry`` what ``lookup`` sees (for one compilation)."""
    token = _ACTIVE.set(registry)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def lookup(name: str, kind: str | None = None) -> Component | None:
    """The entry for ``name`` (or ``provider.name``) in the active registry, of ``kind`` when
    given; None when unknown or ambiguous."""
    return active().lookup(name, kind)


def all_components() -> tuple[Component, ...]:
    return active().components


def of_kind(kind: str) -> list[Component]:
    return active().of_kind(kind)
