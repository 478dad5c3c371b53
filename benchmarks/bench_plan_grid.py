"""`specc plan --json` of large grids: time and peak memory; the plan streams, so memory is flat.

    .venv/bin/python benchmarks/bench_plan_grid.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SPEC = """experiment big {{
  model m = gpt2(layers = 2, heads = 2, width = 32, vocab = bytes)
  data d = zipf_ngrams()
  train {{ optimizer = adamw(lr = lr, weight_decay = wd); steps = 100 }}
  sweep grid {{
    lr in [{lrs}]
    seed in 0..{seeds}
    train.batch in [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    wd in [0.0, 0.1]
  }}
}}
"""


def run(size: int, tmp: Path) -> tuple[float, float]:
    n_lr = 5
    seeds = size // (n_lr * 10 * 2)
    lrs = ", ".join(f"{(i + 1) * 1e-4:g}" for i in range(n_lr))
    spec = tmp / f"grid_{size}.exp"
    spec.write_text(SPEC.format(lrs=lrs, seeds=seeds - 1))
    specc_bin = str(Path(sys.executable).with_name("specc"))
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"subprocess.run([{specc_bin!r}, 'plan', {str(spec)!r}, '--json'], check=True,"
        " stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss_kb = out.stdout.split()
    return float(seconds), int(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        base = None
        for size in args.sizes:
            seconds, mb = run(size, Path(d))
            base = base or mb
            print(f"{size:>8,} runs: {seconds:6.2f} s, {seconds / size * 1e6:6.1f} us/run, "
                  f"peak RSS {mb:6.1f} MB ({mb / base:.2f}x the smallest grid)")


if __name__ == "__main__":
    main()
