"""The CPU and CUDA backend: placement, precision, execution, data feed and distribution."""

from __future__ import annotations

from specc_torch.backend import BACKEND_CPU, BACKEND_CUDA, TorchBackend

__all__ = ["BACKEND_CPU", "BACKEND_CUDA", "TorchBackend"]
