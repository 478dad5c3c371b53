"""`specc check` of a spec that imports a 500-line component file vs an equivalent spec of
built-ins only, in the same run; and whether torch was imported.

    .venv/bin/python benchmarks/bench_check_components.py --repeat 15

Two measurements, both alternating the two specs: the whole `specc check` command (a fresh
interpreter each time, as a user runs it) and the compilation alone in one process
(`compile_source(..., stop_after="check")`, the cost `import python` adds to the check itself).
The component file starts with `import torch`; the command's child asserts torch never loaded.
In process, a cold read (the file's signatures read again each time) and a warm one (read once
per content and kept, as in an editor's repeated checks) are both reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = '''"""A component file of about 500 lines (generated for the benchmark)."""
from typing import Annotated, Literal

import torch

from specc.api import BuildContext, Range, Split, component

'''
COMPONENT = '''

@component("{kind}"{caps})
def {name}(
    width: Annotated[int, Range(lo=1)] = 64,
    depth: Annotated[int, Range(lo=1, hi=16)] = 2,
    rate: Annotated[float, Range(lo=0, lo_open=True)] = 0.1,
    mode: Literal["a", "b", "c"] = "a",
    tags: list[str] = [],
    scale: float | None = None,
    *, ctx: BuildContext,
):
    """Component {name}.

    Args:
        width: hidden units
        depth: layers
        rate: a rate
        mode: a mode
        tags: labels
        scale: a scale
    """
    layers = [torch.nn.Linear(width, width) for _ in range(depth)]
    return torch.nn.Sequential(*layers)
'''
USER_SPEC = """import python "components.py"

experiment e {
  data d = data_0(width = 32, mode = b)
  model m = model_0(width = 64, depth = 2, rate = 0.5)
  objective = objective_0(scale = 2.0)
  metrics = [loss, metric_0(tags = ["x", "y"]), metric_1]
  train { steps = 100; batch = 32 }
}
"""
BUILTIN_SPEC = """experiment e {
  data d = arithmetic(ops = ["+", "-"], max = 100, train = 400)
  model m = gpt2(layers = 2, heads = 4, width = 64, vocab = numbers(0..199))
  objective = next_token
  metrics = [loss, exact_match(d.test), token_accuracy]
  train { steps = 100; batch = 32 }
}
"""


def write_project(root: Path) -> tuple[Path, Path, int]:
    (root / "specc.toml").write_text("")
    parts = [HEADER]
    kinds = [("data", ', provides=("vectors",)'), ("model", ', provides=("thing",)'),
             ("objective", ""), ("metric", "")]
    i = 0
    while sum(p.count("\n") for p in parts) < 480:
        kind, caps = kinds[i % 4]
        parts.append(COMPONENT.format(kind=kind, caps=caps, name=f"{kind}_{i // 4}"))
        i += 1
    text = "".join(parts)
    (root / "components.py").write_text(text)
    (root / "user.exp").write_text(USER_SPEC)
    (root / "builtin.exp").write_text(BUILTIN_SPEC)
    return root / "user.exp", root / "builtin.exp", text.count("\n")


CHILD = ("import sys, time\nt = time.perf_counter()\nfrom specc.cli.main import main\n"
         "rc = main(['check', sys.argv[1]])\n"
         "assert rc == 0 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    from specc.catalogue import pyread
    from specc.compiler.pipeline import compile_source

    with tempfile.TemporaryDirectory() as d:
        user, builtin, lines = write_project(Path(d))
        for spec in (user, builtin):
            r = compile_source(spec.read_text(), str(spec), stop_after="check")
            assert r.ok, r.render()
        cli: dict[str, list[float]] = {"user": [], "builtin": []}
        inproc: dict[str, list[float]] = {"user": [], "builtin": []}
        warm: dict[str, list[float]] = {"user": [], "builtin": []}
        for i in range(args.repeat):
            order = [("user", user), ("builtin", builtin)]
            for name, spec in order if i % 2 == 0 else order[::-1]:
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", CHILD, str(spec)], check=True,
                               capture_output=True)
                cli[name].append(time.perf_counter() - t)
                text = spec.read_text()
                t = time.perf_counter()
                for _ in range(10):
                    pyread._MEMO.clear()  # a cold read each time, as in a fresh process
                    compile_source(text, str(spec), stop_after="check")
                inproc[name].append((time.perf_counter() - t) / 10)
                t = time.perf_counter()
                for _ in range(10):  # an editor's repeated checks: the file's read is kept
                    compile_source(text, str(spec), stop_after="check")
                warm[name].append((time.perf_counter() - t) / 10)
    med = {k: {n: statistics.median(v) for n, v in d.items()}
           for k, d in (("cli", cli), ("in_process", inproc), ("warm", warm))}
    result = {"component_file_lines": lines, "repeat": args.repeat,
              "cli_ms": {n: round(v * 1e3, 2) for n, v in med["cli"].items()},
              "cli_ratio": round(med["cli"]["user"] / med["cli"]["builtin"], 4),
              "in_process_ms": {n: round(v * 1e3, 3) for n, v in med["in_process"].items()},
              "in_process_ratio": round(med["in_process"]["user"]
                                        / med["in_process"]["builtin"], 4),
              "in_process_warm_ms": {n: round(v * 1e3, 3) for n, v in med["warm"].items()},
              "in_process_warm_ratio": round(med["warm"]["user"] / med["warm"]["builtin"], 4),
              "torch_imported": False}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
