"""Critical batch size arithmetic: S(B) fits, B* by the overhead rule, scaling-law fits, GNS.

Follows ../shared/research/seed10_cbs.md §1.4: fit log S(B) = log(a + b·B^-α) by least squares
(α = 1, or free); B* solves a + b/B* = (1+ρ)(a + b/B_ref)·B_ref/B*, which for α = 1 is
B* = (1+ρ)·B_ref + ρ·b/a.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def fit_steps(batches: Sequence[float], steps: Sequence[float],
              free_exponent: bool = False) -> dict[str, float]:
    """Fit S(B) = a + b / B^alpha on log S; returns a, b, alpha and the fit's RMS log error."""
    from scipy.optimize import curve_fit

    B = np.asarray(batches, dtype=float)
    S = np.asarray(steps, dtype=float)
    keep = np.isfinite(S) & (S > 0)
    B, S = B[keep], S[keep]
    if len(B) < (3 if free_exponent else 2):
        msg = f"need at least {3 if free_exponent else 2} batch sizes that reach the target"
        raise ValueError(msg)
    a0 = max(float(S.min()) * 0.5, 1e-6)
    b0 = max(float(((S - a0) * B).mean()), 1e-6)

    if free_exponent:
        def model(x: np.ndarray, la: float, lb: float, alpha: float) -> np.ndarray:
            return np.log(np.exp(la) + np.exp(lb) * x ** (-alpha))

        p0: list[float] = [math.log(a0), math.log(b0), 1.0]
    else:
        def model(x: np.ndarray, la: float, lb: float) -> np.ndarray:  # type: ignore[misc]
            return np.log(np.exp(la) + np.exp(lb) / x)

        p0 = [math.log(a0), math.log(b0)]
    params, _ = curve_fit(model, B, np.log(S), p0=p0, maxfev=20000)
    residual = np.log(S) - model(B, *params)
    return {"a": float(math.exp(params[0])), "b": float(math.exp(params[1])),
            "alpha": float(params[2]) if free_exponent else 1.0,
            "rms_log_error": float(np.sqrt(np.mean(residual**2)))}


def critical_batch(fit: dict[str, float], reference: float, overhead: float) -> float:
    """B*: where the fitted steps exceed linear scaling from ``reference`` by ``overhead``."""
    a, b, alpha = fit["a"], fit["b"], fit["alpha"]
    if alpha == 1.0:
        return (1 + overhead) * reference + overhead * b / a
    from scipy.optimize import brentq

    s_ref = a + b * reference ** (-alpha)

    def gap(x: float) -> float:
        return a + b * x ** (-alpha) - (1 + overhead) * s_ref * reference / x

    hi = reference * 2
    while gap(hi) < 0 and hi < 1e12:
        hi *= 2
    return float(brentq(gap, reference * (1 + 1e-9), hi))


def fit_power(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """y = c · x^gamma by least squares in log space (B* against N or D)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    gamma, logc = np.polyfit(lx, ly, 1)
    return {"c": float(math.exp(logc)), "gamma": float(gamma)}


def steps_to_target(history: Sequence[dict[str, Any]], target: float,
                    keys: Sequence[str]) -> int | None:
    """The first evaluated step whose loss (raw or any EWA) reaches the target (<=)."""
    for row in history:
        if any(k in row and row[k] <= target for k in keys):
            return int(row["step"])
    return None


def gradient_noise_scale(small: tuple[int, float], big: tuple[int, float]) -> dict[str, float]:
    """McCandlish et al.'s B_simple from squared gradient norms at two batch sizes.

    |G|² ≈ (B_big·|G_big|² − B_small·|G_small|²)/(B_big − B_small),
    tr(Σ) ≈ (|G_small|² − |G_big|²)/(1/B_small − 1/B_big), B_simple = tr(Σ)/|G|².
    """
    (bs, gs), (bb, gb) = small, big
    g2 = (bb * gb - bs * gs) / (bb - bs)
    trace = (gs - gb) / (1 / bs - 1 / bb)
    return {"g2": g2, "trace": trace, "b_simple": trace / g2 if g2 > 0 else float("inf")}
