"""Components for the golden diagnostics of user components (never imported by check)."""
from typing import Annotated, Literal

import torch  # noqa: F401 - check must not import it

from specc.api import BuildContext, Range, component


@component("data", provides=("vectors",))
def patches(d: Annotated[int, Range(lo=2)] = 200,
            n_snr2: Annotated[float, Range(lo=0, lo_open=True)] = 2.0,
            *, ctx: BuildContext):
    """Two-patch Gaussian data.

    Args:
        d: dimension of a patch
        n_snr2: n times the squared signal-to-noise ratio (above 0)
    """


@component("model", provides=("classifier",), requires=("vectors",))
def linear_net(patch_dim: Annotated[int, Range(lo=1)],
               width: Annotated[int, Range(lo=1)] = 20,
               head: Literal["fixed_pm1", "tied"] = "fixed_pm1", *, ctx: BuildContext):
    """A linear network.

    Args:
        patch_dim: input dimension of a patch
    """


@component("objective", requires=("denoiser",))
def dsm(alpha: Annotated[float, Range(lo=0, hi=1, hi_open=True)] = 0.8, *, ctx: BuildContext):
    """Denoising score matching.

    Args:
        alpha: signal coefficient, in [0, 1)
    """


@component("metric")
def accuracy(*, ctx: BuildContext):
    """An accuracy that collides with specc's own."""
