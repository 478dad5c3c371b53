"""Embed the specc compiler: a sweep-budget linter for CI.

Compiles every spec given, prints the runs, steps, tokens and FLOPs each experiment implies, and
fails (exit 1) when one exceeds a FLOPs budget, or when a spec has any diagnostic. Nothing runs.

    python examples/sweep_budget.py specs/*.exp --max-flops 1e15
"""

from __future__ import annotations

import argparse
import sys

import specc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--max-flops", type=float, default=float("inf"))
    ap.add_argument("--profile")
    args = ap.parse_args(argv)
    failed = False
    print(f"{'experiment':<16} {'strategy':<8} {'runs':>6} {'steps':>10} {'tokens':>14} "
          f"{'FLOPs':>10}")
    for path in args.specs:
        result = specc.plan(path, profile=args.profile)
        if not result.ok:  # diagnostics are data: no exception for a user's mistake
            print(result.render(), file=sys.stderr)
            failed = True
            continue
        assert result.plan is not None
        for ep in result.plan.experiments:
            cost = ep.cost()
            if cost.flops is None:  # a model whose shape is unknown: say so, never pass it
                flag, flops = "  UNKNOWN COST", "?"
            else:
                flag = "  OVER BUDGET" if cost.flops > args.max_flops else ""
                flops = f"{cost.flops:.2e}"
            failed |= bool(flag)
            print(f"{ep.experiment.name:<16} {ep.strategy:<8} {cost.runs:>6} {cost.steps:>10,} "
                  f"{cost.tokens:>14,} {flops:>10}{flag}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
