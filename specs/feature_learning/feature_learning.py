"""S7, "On the feature learning in diffusion models" (Han, Huang, Cao, Zou; ICLR 2025): the same
two-layer patch network trained to classify or to denoise two-patch Gaussian data, and the weight
probes that say whether it learned the signal or memorised the noise
(../shared/research/seeds_other.md §F; docs/components.md for the contracts).

Data (Def. 2.1): x = [x^(1), x^(2)] with x^(1) = mu_y (mu_{+1} = |mu| e_1, mu_{-1} = |mu| e_2) and
x^(2) = xi ~ N(0, sigma^2 I) with the two signal coordinates zeroed (orthogonal to the signal);
SNR = |mu| / (sigma sqrt(d)), so |mu| = sigma sqrt(d n_snr2 / n).

Unconfirmed in the paper (our choices, as in the notes' prototype): ReLU^3 for the classifier,
a square activation for the denoiser, 1/m output normalisation, epsilon-prediction with
alpha = 0.8, initialisation N(0, 0.01^2).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch

from specc.api import BuildContext, Data, Loss, Range, component


@component("data", provides=("patches",), members=("train", "test"))
def two_patch_gaussian(
    d: Annotated[int, Range(lo=3)] = 200,
    n: Annotated[int, Range(lo=2)] = 20,
    n_snr2: Annotated[float, Range(lo=0, lo_open=True)] = 2.0,
    sigma: Annotated[float, Range(lo=0, lo_open=True)] = 1.0,
    test: Annotated[int, Range(lo=1)] = 200,
    seed: Annotated[int, Range(lo=0)] = 0,
    *, ctx: BuildContext,
) -> Any:
    """Two-patch Gaussian data: a signal patch mu_y and a noise patch orthogonal to it.

    Args:
        d: dimension of a patch
        n: training examples (full-batch gradient descent uses batch = n)
        n_snr2: n times the squared signal-to-noise ratio; sets |mu|
        sigma: standard deviation of the noise patch's coordinates
        test: held-out examples
        seed: fixes the examples
    """
    return TwoPatches(d, n, n_snr2, sigma, test, seed)


@component("model", provides=("classifier", "patch_filters"), requires=("patches",))
def patch_classifier(
    width: Annotated[int, Range(lo=1)] = 20,
    activation: Literal["relu3", "square", "relu"] = "relu3",
    init_std: Annotated[float, Range(lo=0, lo_open=True)] = 0.01,
    *, ctx: BuildContext,
) -> Any:
    """Two-layer patch network with a fixed +-1 second layer: logit_j = (1/m) sum_r sum_p
    act(<w_{j,r}, x^(p)>) for each class j.

    Args:
        width: filters per class (m)
        activation: the first layer's non-linearity
        init_std: standard deviation of the initial filters
    """
    torch.manual_seed(ctx.seed)
    return PatchNet(ctx.data.d, width, activation, init_std, tied=False)


@component("model", provides=("denoiser", "patch_filters"), requires=("patches",))
def patch_denoiser(
    width: Annotated[int, Range(lo=1)] = 20,
    activation: Literal["relu3", "square", "relu"] = "square",
    init_std: Annotated[float, Range(lo=0, lo_open=True)] = 0.01,
    *, ctx: BuildContext,
) -> Any:
    """The same first layer with the second layer tied to it: each patch's output is
    (1/m) sum_r act(<w_r, x_t^(p)>) w_r.

    Args:
        width: filters (m)
        activation: the first layer's non-linearity
        init_std: standard deviation of the initial filters
    """
    torch.manual_seed(ctx.seed)
    return PatchNet(ctx.data.d, width, activation, init_std, tied=True)


@component("objective", requires=("denoiser",))
def dsm(
    alpha: Annotated[float, Range(lo=0, hi=1, lo_open=True, hi_open=True)] = 0.8,
    predict: Literal["eps", "x0"] = "eps",
    *, ctx: BuildContext,
) -> Any:
    """Denoising score matching at one constant-order noise level: x_t = alpha x_0 + beta eps
    with beta = sqrt(1 - alpha^2); the squared error of the prediction, summed over patches and
    coordinates, weighted by the item count.

    Args:
        alpha: signal coefficient of x_t
        predict: what the network predicts, the noise (eps) or the clean input (x0)
    """
    beta = math.sqrt(1.0 - alpha * alpha)

    def objective(model: Any, batch: dict[str, Any]) -> Loss:
        x0 = batch["x"]
        eps = torch.randn_like(x0)
        target = eps if predict == "eps" else x0
        pred = model(alpha * x0 + beta * eps)
        return Loss(((pred - target) ** 2).sum(), x0.shape[0])

    return objective


@component("metric", requires=("patch_filters",))
def signal_alignment(data: Data, *, ctx: BuildContext) -> Any:
    """Signal learning: mean over the two classes of max_r <w_r, mu_j> / |mu_j| (a classifier's
    filters of class j; a denoiser's shared filters).

    Args:
        data: the two-patch data whose signal vectors are probed
    """
    def measure(model: Any, feed: Any) -> float:
        return signal_probe(model, feed)

    return measure


@component("metric", requires=("patch_filters",))
def noise_alignment(data: Data, *, ctx: BuildContext) -> Any:
    """Noise memorisation: mean over training examples i of max_r <w_r, xi_i> / |xi_i| (a
    classifier's filters of the example's class; a denoiser's shared filters).

    Args:
        data: the two-patch data whose training noise patches are probed
    """
    def measure(model: Any, feed: Any) -> float:
        return noise_probe(model, feed)

    return measure


def signal_probe(model: Any, feed: Any) -> float:
    mus = feed.mu.to(model.w.device)  # (2, d): class index 0 is y = -1, 1 is y = +1
    vals = [float((model.filters(j) @ mus[j]).max() / mus[j].norm()) for j in (0, 1)]
    return sum(vals) / 2


def noise_probe(model: Any, feed: Any) -> float:
    xi, y = feed.xi.to(model.w.device), feed.y_train.to(model.w.device)
    total = 0.0
    for i in range(xi.shape[0]):
        total += float((model.filters(int(y[i])) @ xi[i]).max() / xi[i].norm())
    return total / xi.shape[0]


_ACT = {"relu3": lambda z: torch.relu(z) ** 3, "square": lambda z: z * z,
        "relu": torch.relu}


class PatchNet(torch.nn.Module):
    """Filters ``w`` of shape (classes, m, d) for the classifier, (1, m, d) when tied."""

    def __init__(self, d: int, width: int, activation: str, init_std: float, tied: bool) -> None:
        super().__init__()
        self.tied, self.act = tied, _ACT[activation]
        self.w = torch.nn.Parameter(torch.randn(1 if tied else 2, width, d) * init_std)

    def filters(self, j: int) -> Any:
        """The filters probed for class j (all of them when tied)."""
        return self.w[0 if self.tied else j]

    def forward(self, x: Any) -> Any:  # x: (batch, 2 patches, d)
        m = self.w.shape[1]
        if self.tied:  # the denoiser: per patch (1/m) sum_r act(<w_r, x^(p)>) w_r
            w = self.w[0]
            return torch.einsum("bpm,md->bpd", self.act(torch.einsum("bpd,md->bpm", x, w)),
                                w) / m
        pre = torch.einsum("bpd,jmd->bjpm", x, self.w)  # the classifier: logits (batch, 2)
        return self.act(pre).sum(dim=(2, 3)) / m


class TwoPatches:
    """The feed (docs/components.md): ``x`` (batch, 2, d), ``y`` the class index (0 for
    y = -1, 1 for y = +1); full-batch when the batch covers the training set."""

    def __init__(self, d: int, n: int, n_snr2: float, sigma: float, test: int,
                 seed: int) -> None:
        self.d, self.n = d, n
        norm = sigma * math.sqrt(d * n_snr2 / n)
        self.mu = torch.zeros(2, d)
        self.mu[0, 1] = norm  # y = -1 along e_2
        self.mu[1, 0] = norm  # y = +1 along e_1
        g = torch.Generator().manual_seed(seed)
        self.x_train, self.y_train, self.xi = self._draw(n, sigma, g)
        self.x_test, self.y_test, _ = self._draw(test, sigma, g)
        self.schema = {"x": (2, d), "y": ()}

    def _draw(self, count: int, sigma: float, g: torch.Generator) -> tuple[Any, Any, Any]:
        y = torch.randint(0, 2, (count,), generator=g)
        xi = torch.randn(count, self.d, generator=g) * sigma
        xi[:, :2] = 0.0  # orthogonal to both signal vectors
        return torch.stack([self.mu[y], xi], dim=1), y, xi

    def size(self, split: str = "train") -> int:
        return self.n if split == "train" else int(self.y_test.shape[0])

    def train_batch(self, step: int, size: int) -> dict[str, Any]:
        if size >= self.n:  # full-batch gradient descent
            return {"x": self.x_train, "y": self.y_train}
        g = torch.Generator().manual_seed(step)
        idx = torch.randperm(self.n, generator=g)[:size]
        return {"x": self.x_train[idx], "y": self.y_train[idx]}

    def eval_batches(self, split: str, size: int, *_: Any) -> Any:
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        for i in range(0, int(y.shape[0]), size):
            yield {"x": x[i:i + size], "y": y[i:i + size]}
