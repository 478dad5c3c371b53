"""The XLA backend without its environment: deprecated torch-xla APIs are never called, and
importing the backend package does not import torch_xla (it loads only when a run asks)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPRECATED = {"mark_step", "xla_device", "xrt_world_size", "get_ordinal", "get_local_ordinal",
              "xla_device_hw", "xla_real_devices", "step"}


def test_no_deprecated_torch_xla_api_is_called() -> None:
    used = []
    for path in (ROOT / "backends" / "specc_xla").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in DEPRECATED and \
                    isinstance(node.value, ast.Name) and node.value.id in ("xm", "torch_xla"):
                used.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    assert not used, used


def test_importing_the_backend_does_not_import_torch_xla() -> None:
    code = ("import sys, specc_xla; from specc.backend import load_backend; "
            "b = load_backend('xla'); print(b.name, 'torch_xla' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["xla", "False"]
