"""Data feeds: synthetic tasks (prompt/answer pairs), the zipf_ngrams stream, and local files.

Every feed is addressable by step (batch ``s`` is a pure function of the seed and ``s``), so a run
resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from glob import glob as glob_files
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from specc.api import BuildContext, Example, Fraction, Prompts, Range, Vocab, component
from specc.components import tasks
from specc.components import vocab as V
from specc.diagnostics import SpeccError

Batch = dict[str, Any]  # tensors: input_ids, labels, attention_mask, (answer_mask)


class Shapes:
    """The shape policy at run time (Note [Shape policy] in specc/compiler/check_backend.py).

    ``dynamic`` pads each batch to its own longest sequence; ``fixed`` pads every batch to the
    data's longest sequence; ``buckets`` pads to the smallest bucket that fits. Static policies
    also pad a final short evaluation batch to full rows (copies of a real row with no labels,
    so no metric counts them): every batch a static-shape backend sees has a foreseen shape.
    """

    def __init__(self, kind: str, lengths: tuple[int, ...]) -> None:
        self.kind = kind
        self.lengths = lengths

    @property
    def static(self) -> bool:
        return self.kind != "dynamic"

    @property
    def count(self) -> int:
        """Distinct sequence lengths a static policy produces (one graph each)."""
        return len(self.lengths) if self.static else 0

    def width(self, longest_in_batch: int) -> int | None:
        if not self.static:
            return None
        for n in self.lengths:
            if n >= longest_in_batch:
                return n
        msg = (f"a batch holds a {longest_in_batch}-token sequence, longer than the largest "
               f"bucket ({self.lengths[-1]}); add a bucket of at least {longest_in_batch}")
        raise SpeccError(msg)


DYNAMIC = Shapes("dynamic", ())


def shapes_for(train: dict[str, Any], data: TaskData | StreamData,
               compiles: bool = False) -> Shapes:
    """The policy the plan carries, sized to this data (``auto`` is dynamic here: the backend
    pass has already turned it into ``fixed`` for static-shape backends; under torch.compile it
    is ``buckets``, a few fixed lengths, so batches of varying length do not recompile)."""
    kind = str(train.get("shapes") or "auto")
    if kind == "auto" and compiles:
        kind = "buckets"
    if kind in ("auto", "dynamic"):
        return DYNAMIC
    longest = data.longest()
    if kind == "fixed":
        return Shapes("fixed", (longest,))
    given = sorted({int(b) for b in train.get("buckets") or ()})
    if not given:  # four evenly spaced lengths, multiples of 8, the last one the longest
        given = sorted({min(longest, (math.ceil(longest * i / 4) + 7) // 8 * 8)
                        for i in (1, 2, 3, 4)})
    if given[-1] < longest:
        msg = (f"the longest sequence of the data has {longest} tokens but the largest bucket is "
               f"{given[-1]}; add a bucket of at least {longest} to train.buckets")
        raise SpeccError(msg)
    return Shapes("buckets", tuple(given))


class TaskData:
    """Prompt/answer examples; loss and exact match are on the answer (and the final eos)."""

    kind = "task"

    def __init__(self, splits: dict[str, list[Example]], vocab: V.Vocab, context: int,
                 seed: int = 0, gen: tasks.Gen | None = None) -> None:
        """``seed`` orders the training batches (Note [Data order]); ``gen`` is the generator
        of a built-in task's examples."""
        if not splits.get("train"):
            raise SpeccError("the data has no training examples (a `train` split)")
        self.vocab = vocab
        self.context = context
        self.gen = gen
        self.splits = splits
        self.encoded = {name: [self._encode(e) for e in exs] for name, exs in self.splits.items()}
        self.seed = seed
        too_long = [len(ids) for ids, _ in self.encoded["train"] if len(ids) > context]
        if too_long:
            msg = (f"task examples are up to {max(too_long)} tokens but the model's context is "
                   f"{context}; raise `context` in the model")
            raise SpeccError(msg)

    def _encode(self, e: Example) -> tuple[list[int], int]:
        prompt = [self.vocab.bos, *self.vocab.encode(e.prompt)]
        answer = [*self.vocab.encode(" " + e.answer), self.vocab.eos]
        return prompt + answer, len(prompt)

    def size(self, split: str = "train") -> int:
        return len(self.encoded[split])

    def longest(self) -> int:
        """The longest example of any split: the width of a fixed shape policy."""
        return max((len(ids) for items in self.encoded.values() for ids, _ in items), default=1)

    def seq_len(self) -> float:
        """Mean tokens per training example (what a token budget is counted in)."""
        lengths = [len(ids) for ids, _ in self.encoded["train"]]
        return float(np.mean(lengths)) if lengths else 1.0

    def _arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The split as padded id and label matrices (built once), lengths and label counts."""
        cache = self.__dict__.setdefault("_array_cache", {})
        if split not in cache:
            items = self.encoded[split]
            width = max((len(ids) for ids, _ in items), default=1)
            ids = np.full((len(items), width), self.vocab.pad, dtype=np.int64)
            labels = np.full((len(items), width), -100, dtype=np.int64)
            lengths = np.zeros(len(items), dtype=np.int64)
            for i, (seq, n_prompt) in enumerate(items):
                ids[i, : len(seq)] = seq
                labels[i, n_prompt: len(seq)] = seq[n_prompt:]
                lengths[i] = len(seq)
            n_labels = (labels != -100).sum(axis=1)
            cache[split] = (ids, labels, lengths, n_labels)
        return cache[split]  # type: ignore[no-any-return]

    def _rows(self, split: str, rows: np.ndarray, shapes: Shapes = DYNAMIC,
              full: int | None = None) -> Batch:
        """The batch of these rows; under a static policy padded to its width and, when
        ``full`` is given, to ``full`` rows (copies of the first row with no labels)."""
        import torch

        ids, labels, lengths, n_labels = self._arrays(split)
        real = len(rows)
        if full is not None and real < full and shapes.static:
            rows = np.concatenate([rows, np.full(full - real, rows[0], dtype=rows.dtype)])
        width = shapes.width(int(lengths[rows].max())) or int(lengths[rows].max())
        pick_ids, pick_labels = ids[rows, :width], labels[rows, :width]
        if width > ids.shape[1]:  # a fixed length longer than every example: pad on the right
            pad = width - ids.shape[1]
            pick_ids = np.pad(pick_ids, ((0, 0), (0, pad)), constant_values=self.vocab.pad)
            pick_labels = np.pad(pick_labels, ((0, 0), (0, pad)), constant_values=-100)
        if len(rows) > real:
            pick_labels = pick_labels.copy()
            pick_labels[real:] = -100
        mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
        return {"input_ids": torch.from_numpy(np.ascontiguousarray(pick_ids)),
                "labels": torch.from_numpy(np.ascontiguousarray(pick_labels)),
                "attention_mask": torch.from_numpy(mask),
                "n_input": int(lengths[rows[:real]].sum()),
                "n_labels": int(n_labels[rows[:real]].sum())}

    def train_batch(self, step: int, batch: int, shapes: Shapes = DYNAMIC) -> Batch:
        n = self.size("train")
        positions = np.arange(step * batch, step * batch + batch)
        epochs, offsets = np.divmod(positions, n)
        rows = np.empty(batch, dtype=np.int64)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            rows[sel] = self._perm(int(epoch), n)[offsets[sel]]
        return self._rows("train", rows, shapes)

    def _perm(self, epoch: int, n: int) -> np.ndarray:
        # Read and replaced as one tuple: the prefetch thread and the main thread may both draw
        # batches, and neither may return the other's epoch.
        cache = getattr(self, "_perm_cache", None)
        if cache is None or cache[0] != epoch:
            cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
            self._perm_cache = cache
        return cache[1]

    def eval_batches(self, split: str, batch: int, limit: int | None = None,
                     shapes: Shapes = DYNAMIC) -> Iterator[Batch]:
        n = min(self.size(split), limit or self.size(split))
        for i in range(0, n, batch):
            yield self._rows(split, np.arange(i, min(i + batch, n)), shapes, full=batch)

    def pairs(self, split: str = "circuit") -> list[tuple[list[int], list[int], int]]:
        """Clean and corrupted prompt ids of equal length, and the clean answer's first token."""
        out = []
        for e in self.splits[split]:
            if e.corrupt is None:
                continue
            clean = [self.vocab.bos, *self.vocab.encode(e.prompt)]
            corrupt = [self.vocab.bos, *self.vocab.encode(e.corrupt)]
            if len(clean) == len(corrupt):
                out.append((clean, corrupt, self.vocab.encode(" " + e.answer)[0]))
        return out


class StreamData:
    """Fixed-length token sequences from an infinite stream or a tokenized corpus."""

    kind = "stream"

    def __init__(self, context: int, seed: int) -> None:
        self.context = context
        self.seed = seed
        self.heldout: np.ndarray = np.zeros((0, context + 1), dtype=np.int64)

    def seq_len(self) -> int:
        return self.context

    def longest(self) -> int:
        return self.context

    def size(self, split: str = "train") -> int:
        return 0  # infinite: epochs are not defined

    def sequences(self, step: int, count: int) -> np.ndarray:
        raise NotImplementedError

    def train_batch(self, step: int, batch: int, shapes: Shapes = DYNAMIC) -> Batch:
        import torch

        seqs = torch.from_numpy(self.sequences(step, batch))
        n = batch * self.context
        return {"input_ids": seqs[:, :-1].contiguous(), "labels": seqs[:, 1:].contiguous(),
                "attention_mask": None, "shifted": True, "n_input": n, "n_labels": n}

    def eval_batches(self, split: str, batch: int, limit: int | None = None,
                     shapes: Shapes = DYNAMIC) -> Iterator[Batch]:
        import torch

        held = self.heldout[: limit or None]
        for i in range(0, len(held), batch):
            seqs = torch.from_numpy(held[i: i + batch])
            labels = seqs[:, 1:].contiguous()
            real = len(seqs)
            if shapes.static and real < batch:  # full rows: copies of a row with no labels
                seqs = torch.cat([seqs, seqs[:1].expand(batch - real, -1)])
                labels = torch.cat([labels, torch.full((batch - real, labels.shape[1]), -100)])
            yield {"input_ids": seqs[:, :-1].contiguous(), "labels": labels,
                   "attention_mask": None, "shifted": True}


class ZipfNgrams(StreamData):
    """A stationary stream: rules (random token n-grams) drawn with Zipf weights, concatenated.

    Frequent rules are learned first and rare ones later, so the loss keeps falling roughly as a
    power law of the tokens seen (../shared/research/seed10_cbs.md section 6).
    """

    def __init__(self, cfg: dict[str, Any], context: int, vocab_size: int,
                 run_seed: int = 0) -> None:
        super().__init__(context, order_seed(int(cfg["seed"]), run_seed))
        self.data_seed = int(cfg["seed"])
        vocab = min(int(cfg["vocab"]), vocab_size)
        rng = np.random.default_rng(self.data_seed)
        order = int(cfg["order"])
        n_rules = int(cfg["rules"])
        lengths = rng.integers(order, 2 * order + 1, size=n_rules)
        self.rules = [rng.integers(0, vocab, size=int(n)) for n in lengths]
        weights = 1.0 / np.arange(1, n_rules + 1) ** float(cfg["alpha"])
        self.p = weights / weights.sum()
        self.mean_len = float(np.dot(self.p, lengths))
        self.heldout = self._draw(np.random.default_rng([self.data_seed, 1 << 30]),
                                  int(cfg["heldout"]))

    def _draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        need = count * (self.context + 1)
        n = int(need / self.mean_len * 1.3) + 16
        ids = rng.choice(len(self.rules), size=n, p=self.p)
        stream = np.concatenate([self.rules[i] for i in ids])
        while len(stream) < need:
            more = rng.choice(len(self.rules), size=n, p=self.p)
            stream = np.concatenate([stream, *[self.rules[i] for i in more]])
        return stream[:need].reshape(count, self.context + 1).astype(np.int64)

    def sequences(self, step: int, count: int) -> np.ndarray:
        return self._draw(np.random.default_rng([self.seed, step]), count)


class CorpusData(StreamData):
    """A local corpus (text files, JSONL, CSV, Parquet, a cached hub dataset), tokenized once."""

    def __init__(self, cfg: dict[str, Any], texts: list[str], vocab: V.Vocab, context: int,
                 seed: int) -> None:
        super().__init__(context, seed)
        ids: list[int] = []
        for t in texts:
            ids.extend(vocab.encode(t))
            ids.append(vocab.eos)
        n = len(ids) // (context + 1)
        if n < 2:
            msg = f"the corpus has {len(ids)} tokens, fewer than two sequences of {context + 1}"
            raise SpeccError(msg)
        arr = np.asarray(ids[: n * (context + 1)], dtype=np.int64).reshape(n, context + 1)
        n_test = max(1, round(n * float(cfg.get("test", 0.05))))
        self.heldout = arr[:n_test]
        self.train = arr[n_test:]

    def size(self, split: str = "train") -> int:
        return len(self.train)

    def sequences(self, step: int, count: int) -> np.ndarray:
        n = len(self.train)
        rows = []
        for pos in range(step * count, step * count + count):
            epoch, offset = divmod(pos, n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            rows.append(self.train[perm[offset]])
        return np.stack(rows)


def _read_texts(cfg: dict[str, Any], base: Path, load: Any) -> list[str]:
    """The texts of a local file through `datasets` (``load`` gives its dataset), or of a
    cached hub dataset: the ``field`` column."""
    import datasets

    datasets.disable_progress_bars()
    field = cfg.get("field", "text")
    ds = load(datasets)
    if field not in ds.column_names:
        msg = f'{cfg.get("path") or cfg.get("id")} has no field "{field}" ({ds.column_names})'
        raise SpeccError(msg)
    return [str(t) for t in ds[field]]


def _local_file(cfg: dict[str, Any], base: Path, builder: str) -> Any:
    def load(datasets: Any) -> Any:
        path = Path(cfg["path"])
        path = path if path.is_absolute() else base / path
        if not path.exists():
            msg = f'data file "{cfg["path"]}" does not exist (looked for {path})'
            raise SpeccError(msg)
        return datasets.load_dataset(builder, data_files=str(path), split="train")

    return load


def _corpus(texts: list[str], ctx: BuildContext) -> CorpusData:
    return CorpusData(ctx.config, texts, ctx.vocab, ctx.context, ctx.seed)


# ------------------------------------------------------------------------------------ builders
@component("data", provides=("tokens",), members=("train", "test", "validation"))
def zipf_ngrams(
    *,
    vocab: Annotated[int, Range(lo=2)] = 256,
    rules: Annotated[int, Range(lo=1)] = 4096,
    alpha: Annotated[float, Range(lo=0, lo_open=True)] = 1.1,
    order: Annotated[int, Range(lo=1)] = 3,
    heldout: Annotated[int, Range(lo=1)] = 64,
    seed: Annotated[int, Range(lo=0)] = 0,
    ctx: BuildContext,
) -> Any:
    """An infinite synthetic token stream with power-law n-gram structure.

    Args:
        vocab: token count
        rules: n-gram rules
        alpha: Zipf exponent
        order: n-gram order
        heldout: held-out sequences
        seed: random seed
    """
    return ZipfNgrams(ctx.config, ctx.context, ctx.vocab.size, ctx.seed)


@component("data", provides=("tokens",), members=("train", "test", "validation"))
def text_files(
    *,
    glob: str,
    tokenizer: Vocab = "bytes",
    test: Annotated[Fraction, Range(lo=0, hi=1)] = "5%",
    ctx: BuildContext,
) -> Any:
    """Local text files matched by a glob.

    Args:
        glob: files, relative to the spec
        tokenizer: how text becomes tokens
        test: held-out share
    """
    full = glob if Path(glob).is_absolute() else str(ctx.base / glob)
    files = sorted(glob_files(full, recursive=True))
    if not files:
        msg = f'no file matches "{glob}" (looked in {ctx.base})'
        raise SpeccError(msg)
    return _corpus([Path(f).read_text(errors="replace") for f in files], ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation"))
def jsonl(
    *,
    path: str,
    field: str = "text",
    tokenizer: Vocab = "bytes",
    test: Annotated[Fraction, Range(lo=0, hi=1)] = "5%",
    ctx: BuildContext,
) -> Any:
    """A local JSONL file through `datasets`.

    Args:
        path: the file
        field: text field
        tokenizer: tokenizer
        test: held-out share
    """
    return _corpus(_read_texts(ctx.config, ctx.base, _local_file(ctx.config, ctx.base,
                                                                    "json")), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation"), name="csv")
def csv_file(
    *,
    path: str,
    field: str = "text",
    tokenizer: Vocab = "bytes",
    test: Annotated[Fraction, Range(lo=0, hi=1)] = "5%",
    ctx: BuildContext,
) -> Any:
    """A local CSV file through `datasets`.

    Args:
        path: the file
        field: text column
        tokenizer: tokenizer
        test: held-out share
    """
    return _corpus(_read_texts(ctx.config, ctx.base, _local_file(ctx.config, ctx.base,
                                                                    "csv")), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation"))
def parquet(
    *,
    path: str,
    field: str = "text",
    tokenizer: Vocab = "bytes",
    test: Annotated[Fraction, Range(lo=0, hi=1)] = "5%",
    ctx: BuildContext,
) -> Any:
    """A local Parquet file through `datasets`.

    Args:
        path: the file
        field: text column
        tokenizer: tokenizer
        test: held-out share
    """
    return _corpus(_read_texts(ctx.config, ctx.base, _local_file(ctx.config, ctx.base,
                                                                    "parquet")), ctx)


@component("data", provides=("tokens",), members=("train", "test", "validation"))
def hf_dataset(
    *,
    id: str,
    field: str = "text",
    tokenizer: Vocab = "bytes",
    split: str = "train",
    ctx: BuildContext,
) -> Any:
    """A dataset by hub id, from the local cache only.

    Args:
        id: hub id
        field: text column
        tokenizer: tokenizer
        split: split to read
    """
    from specc.components.models import offline

    offline()  # Note [Offline]: before datasets is imported

    def load(datasets: Any) -> Any:
        try:
            return datasets.load_dataset(id, split=split)
        except Exception as exc:
            msg = (f'dataset "{id}" is not in the local Hugging Face cache and nothing is '
                   f"downloaded at run time ({type(exc).__name__}): download it beforehand "
                   f"(hf download {id} --repo-type dataset)")
            raise SpeccError(msg) from exc

    return _corpus(_read_texts(ctx.config, ctx.base, load), ctx)



def build_data(cfg: dict[str, Any], vocab: V.Vocab, context: int, base: Path,
               seed: int) -> TaskData | StreamData:
    """The token feed a resolved ``data`` configuration names (its builder, called with the
    run's vocabulary, the model's context and the run's seed)."""
    from specc.components import build

    return build(cfg, BuildContext(seed=seed, base=base, vocab=vocab,  # type: ignore[no-any-return]
                                   context=context))


def token_feed(built: Any, vocab: V.Vocab, context: int, seed: int,
               name: str) -> TaskData | StreamData:
    """The feed of a data component written with specc.api for a language model: its
    ``Prompts`` encoded with the model's vocabulary, or a feed it made itself."""
    if isinstance(built, Prompts):
        return TaskData(built.splits, vocab, context, seed)
    if all(hasattr(built, m) for m in ("train_batch", "eval_batches", "size", "seq_len")):
        return built  # type: ignore[no-any-return]
    msg = (f"data {name} returned a {type(built).__name__}; a language model's data returns "
           "specc.api.Prompts (examples per split) or a token feed (docs/components.md)")
    raise SpeccError(msg)


def order_seed(data_seed: int, run_seed: int) -> int:
    """Note [Data order]: the data's own `seed` fixes its content (which examples, the held-out
    split); the run's `seed` also drives the order batches are drawn in, so `seed in [0, 1, 2]`
    varies initialization and data order together. Run seed 0 keeps the data seed's order."""
    return data_seed + (run_seed << 32)


def steps_for(data: TaskData | StreamData, train: dict[str, Any]) -> int | None:
    """Optimizer steps the budget implies (None: a token budget, checked as tokens are seen)."""
    batch = int(train["batch"])
    if train.get("steps") is not None:
        return int(train["steps"])
    if train.get("epochs") is not None:
        n = data.size("train")
        if n == 0:
            msg = "an epoch budget needs finite data; give steps or tokens for a stream"
            raise SpeccError(msg)
        exact = float(train["epochs"]) * n / batch
        # drop_last: the final partial batch is dropped rather than filled from the next epoch.
        return max(1, math.floor(exact) if train.get("drop_last") else math.ceil(exact))
    return None
