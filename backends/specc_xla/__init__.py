"""The XLA backend (TPU, and PJRT CPU for tests) through torch-xla 2.9.

It lives in its own environment (torch 2.9.0 + torch-xla 2.9.0: `bash backends/xla-env.sh`);
importing this package does not import torch_xla, which is loaded only when a run asks for it.
"""

from __future__ import annotations

from specc_xla.backend import BACKEND_XLA, XlaBackend

__all__ = ["BACKEND_XLA", "XlaBackend"]
