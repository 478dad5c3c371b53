"""CBS: tokens spent by the racing, early-stopping sweep vs the full grid run to the same budget,
and the B* each finds (same data, same seeds; a reduced sweep that runs in minutes on a CPU).

    .venv/bin/python benchmarks/bench_cbs_tokens.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

SPEC = """experiment cbs_bench {
  model lm = gpt2(layers = 1, heads = 2, width = 32, context = 32, vocab = bytes)
  data text = zipf_ngrams(vocab = 64, rules = 256, heldout = 16)
  train {
    optimizer = adam(lr = searched, betas = (0.95, 0.99), weight_decay = 0)
    schedule = constant(warmup = 10)
    ewa = [0.99]
    eval_every = 20
  }
  sweep cbs {
    batch in [2, 4, 8, 16, 32, 64]
    reference = 8
    target = loss_at(batch = reference, tokens = 60k)
    lr in [3e-3, 1e-2] race
    max_tokens = 300k
  }
}
"""


def main() -> None:
    from specc.compiler.pipeline import compile_file
    from specc.runtime.execute import Runner, RunOptions
    from specc.sweeps.cbs import run_cbs

    ap = argparse.ArgumentParser()
    ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "cbs.exp"
        spec.write_text(SPEC)
        out = {}
        for mode in ("race", "full"):
            root = Path(d) / mode
            result = compile_file(spec)
            runner = Runner(RunOptions(spec=spec, root=root, quiet=True),
                            sources=result.sources, plan_hash=result.plan.hash)
            run_cbs(runner, result.program.experiments[0], full_grid=mode == "full")
            name = "cbs_full_grid.json" if mode == "full" else "cbs.json"
            data = json.loads((root / "cbs_bench" / name).read_text())
            r = data["results"][0]
            out[mode] = {"tokens": data["tokens_spent"], "b_star": r.get("b_star"),
                         "seconds": data["seconds"],
                         "steps": {row["batch"]: row["steps"] for row in r["table"]}}
        out["token_ratio_race_over_full"] = round(out["race"]["tokens"] / out["full"]["tokens"], 4)
        if out["race"]["b_star"] and out["full"]["b_star"]:
            out["b_star_relative_difference"] = round(
                abs(out["race"]["b_star"] - out["full"]["b_star"]) / out["full"]["b_star"], 4)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
