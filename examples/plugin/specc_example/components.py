"""Components written with ``specc.api``: a two-class-or-more spirals dataset, an MLP
classifier and two metrics. ``specc check`` reads the signatures below with ``ast``; torch is
imported only when a run calls a builder."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch

from specc.api import BuildContext, Range, Split, component


@component("data", provides=("vectors", "labels"), members=("train", "test"))
def spirals(
    n: Annotated[int, Range(lo=8)] = 1024,
    classes: Annotated[int, Range(lo=2, hi=16)] = 3,
    noise: Annotated[float, Range(lo=0)] = 0.2,
    turns: Annotated[float, Range(lo=0, lo_open=True)] = 1.5,
    test: Annotated[int, Range(lo=1)] = 256,
    seed: Annotated[int, Range(lo=0)] = 0,
    *, ctx: BuildContext,
) -> Any:
    """Interleaved 2-d spirals, one arm per class.

    Args:
        n: training points
        classes: spiral arms (classes)
        noise: standard deviation of the Gaussian noise added to each point
        turns: how far each arm winds, in turns
        test: held-out points
        seed: fixes the points (the run's seed fixes the order they are drawn in)
    """
    return Spirals(n, classes, noise, turns, test, seed, ctx.seed)


@component("model", provides=("classifier",), requires=("vectors",))
def mlp_classifier(
    width: Annotated[int, Range(lo=1)] = 64,
    depth: Annotated[int, Range(lo=1, hi=16)] = 2,
    activation: Literal["relu", "gelu", "tanh"] = "relu",
    *, ctx: BuildContext,
) -> Any:
    """A multi-layer perceptron over the data's input vectors.

    Args:
        width: hidden units per layer
        depth: hidden layers
        activation: the non-linearity between layers
    """
    torch.manual_seed(ctx.seed)
    act = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}[activation]
    dim, classes = ctx.data.schema["x"][-1], ctx.data.classes
    layers: list[torch.nn.Module] = []
    for i in range(depth):
        layers += [torch.nn.Linear(dim if i == 0 else width, width), act()]
    layers.append(torch.nn.Linear(width, classes))
    return torch.nn.Sequential(*layers)


@component("metric", requires=("classifier",))
def confidence(split: Split | None = None, *, ctx: BuildContext) -> Any:
    """Mean probability the classifier gives its own prediction.

    Args:
        split: the split evaluated (none: test)
    """
    name = split["member"] if isinstance(split, dict) else "test"

    def measure(model: Any, data: Any) -> float:
        total, count = 0.0, 0
        for batch in data.eval_batches(name, 256):
            batch = ctx.to_device(batch)
            probs = model(batch["x"]).float().softmax(-1)
            total += float(probs.max(-1).values.sum())
            count += batch["x"].shape[0]
        return total / max(count, 1)

    return measure


@component("metric", requires=("classifier",))
def per_class_accuracy(split: Split | None = None, *, ctx: BuildContext) -> Any:
    """Accuracy of each class (a dict: `per_class_accuracy.0`, `.1`, ... in the metrics).

    Args:
        split: the split evaluated (none: test)
    """
    name = split["member"] if isinstance(split, dict) else "test"

    def measure(model: Any, data: Any) -> dict[str, float]:
        hits = torch.zeros(data.classes)
        counts = torch.zeros(data.classes)
        for batch in data.eval_batches(name, 256):
            batch = ctx.to_device(batch)
            pred = model(batch["x"]).argmax(-1).cpu()
            y = batch["y"].cpu()
            counts += torch.bincount(y, minlength=data.classes).float()
            hits += torch.bincount(y[pred == y], minlength=data.classes).float()
        return {str(k): float(hits[k] / counts[k]) if counts[k] else 0.0
                for k in range(data.classes)}

    return measure


class Spirals:
    """The data contract (docs/components.md): ``train_batch(step, size)`` is a pure function
    of the step, so a resumed run draws the same batches; ``eval_batches``, ``size``,
    ``schema``."""

    def __init__(self, n: int, classes: int, noise: float, turns: float, test: int, seed: int,
                 run_seed: int) -> None:
        self.classes = classes
        self.seed, self.run_seed = seed, run_seed
        self.splits = {"train": self._points(n, noise, turns, seed * 2 + 1),
                       "test": self._points(test, noise, turns, seed * 2 + 2)}
        self.schema = {"x": (2,), "y": ()}

    def _points(self, n: int, noise: float, turns: float,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % self.classes
        r = torch.rand(n, generator=g)
        angle = r * turns * 2 * torch.pi + y * (2 * torch.pi / self.classes)
        x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)
        return x + noise * r[:, None] * torch.randn(n, 2, generator=g), y

    def size(self, split: str = "train") -> int:
        return int(self.splits[split][1].shape[0])

    def train_batch(self, step: int, size: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed((self.seed << 40) + (self.run_seed << 20) + step)
        idx = torch.randint(0, self.size("train"), (size,), generator=g)
        x, y = self.splits["train"]
        return {"x": x[idx], "y": y[idx]}

    def eval_batches(self, split: str, size: int, *_: Any) -> Any:
        x, y = self.splits[split]
        for i in range(0, len(y), size):
            yield {"x": x[i:i + size], "y": y[i:i + size]}
