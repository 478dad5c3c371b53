"""Step time of the generic loop (objectives, Note [Loss normalization]) vs the language-model
loop it replaced, on the quickstart's model and data, in the same run.

    .venv/bin/python benchmarks/bench_generic_loop.py --baseline a2e0558 --rounds 6

The baseline is a git commit checked out into a temporary worktree; each round runs one child
process per tree (alternating which goes first), and each child times `--steps` real training
steps (Trainer.train_step with its prefetch, after `--warmup` steps) and prints its median
per-step time over blocks of 10 steps. Reported: the median over rounds of each tree, and the
ratio current / baseline (goal <= 1.02).
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

ROOT = Path(__file__).resolve().parents[1]
SPEC = """experiment bench {
  model base = gpt2(layers = 2, heads = 4, width = 128, context = 16, vocab = numbers(0..199))
  data task = arithmetic(ops = ["+", "-"], max = 100, train = 4500, test = 500)
  policy = full
  train {
    optimizer = adamw(lr = 2e-3, weight_decay = 0.1)
    schedule = cosine(warmup = 50)
    batch = 128
    steps = 100000
  }
}
"""


def child(tree: Path, steps: int, warmup: int) -> None:
    sys.path[:0] = [str(tree), str(tree / "backends")]
    import torch
    from specc_torch import BACKEND_CPU

    import specc
    from specc.runtime.loop import Trainer

    assert Path(specc.__file__).resolve().is_relative_to(tree.resolve()), specc.__file__
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = specc.plan(SPEC)
    assert result.ok, result.render()
    [run] = list(result.plan.experiments[0].runs())
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(run.config, Path(d), BACKEND_CPU.runtime(run.config["train"]),
                          spans={}, base_dir=Path(d), store_root=Path(d), progress=False)
        trainer.build()
        trainer.feed = trainer.rt.feed(trainer._batch, 0)
        for s in range(warmup):
            trainer.train_step(s)
        trainer.read_train_loss(1)
        blocks = []
        for b in range(steps // 10):
            t = time.perf_counter()
            for s in range(10):
                trainer.train_step(warmup + b * 10 + s)
            trainer.read_train_loss(1)  # the host read a log boundary does
            blocks.append((time.perf_counter() - t) / 10)
        trainer.feed.close()
    print(json.dumps({"step_ms": statistics.median(blocks) * 1e3, "min_ms": min(blocks) * 1e3}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="a2e0558", help="the commit before the change")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    if args.child:
        child(Path(args.child), args.steps, args.warmup)
        return
    with tempfile.TemporaryDirectory() as d:
        old = Path(d) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.baseline],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            times: dict[str, list[float]] = {"current": [], "baseline": []}
            mins: dict[str, list[float]] = {"current": [], "baseline": []}
            for r in range(args.rounds):
                order = [("current", ROOT), ("baseline", old)]
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", str(tree), "--steps",
                         str(args.steps), "--warmup", str(args.warmup)],
                        capture_output=True, text=True, check=True)
                    got = json.loads(out.stdout.strip().splitlines()[-1])
                    times[name].append(got["step_ms"])
                    mins[name].append(got["min_ms"])
                print(f"round {r}: current {times['current'][-1]:.2f} ms, baseline "
                      f"{times['baseline'][-1]:.2f} ms", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           capture_output=True)
    cur, base = statistics.median(times["current"]), statistics.median(times["baseline"])
    # The fastest 10-step block of each child is the least disturbed by other load.
    cur_min, base_min = statistics.median(mins["current"]), statistics.median(mins["baseline"])
    result = {"baseline": args.baseline, "rounds": args.rounds, "steps": args.steps,
              "current_ms": round(cur, 3), "baseline_ms": round(base, 3),
              "ratio": round(cur / base, 4), "current_min_ms": round(cur_min, 3),
              "baseline_min_ms": round(base_min, 3), "ratio_min": round(cur_min / base_min, 4),
              "all": times, "mins": mins}
    print(f"generic loop {cur:.2f} ms/step, language-model loop ({args.baseline}) {base:.2f} "
          f"ms/step: ratio {cur / base:.3f} (goal <= 1.02); fastest blocks {cur_min:.2f} vs "
          f"{base_min:.2f} ms: ratio {cur_min / base_min:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
