"""`specc check` over specs/ as a whole process, next to Hydra's `app.py --cfg job`, same run.

    .venv/bin/python benchmarks/bench_check.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    specs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("specs/*.exp"))
    specc_bin = str(Path(sys.executable).with_name("specc"))
    cmds = {
        "specc check specs/*.exp": [specc_bin, "check", *specs],
        "hydra app.py --cfg job": [sys.executable, "benchmarks/hydra_app/app.py", "--cfg", "job"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }
    results = {}
    for _ in range(2):  # warm the page cache and lark's grammar cache
        for cmd in cmds.values():
            subprocess.run(cmd, cwd=ROOT, capture_output=True)
    for name, cmd in cmds.items():
        results[name] = median_seconds(cmd, args.repeat)
        print(f"{name:<28} median {results[name] * 1000:7.1f} ms over {args.repeat} runs")
    ratio = results["specc check specs/*.exp"] / results["hydra app.py --cfg job"]
    print(f"ratio specc/hydra: {ratio:.2f} ({len(specs)} specs checked by specc, "
          "one config printed by hydra)")


if __name__ == "__main__":
    main()
