"""The XLA backend on PJRT CPU: graph compilations, compile time and step time after warm-up.

    bash backends/xla-env.sh
    .venv-xla/bin/python benchmarks/bench_xla.py [--spec specs/quickstart.exp] [--steps 60]

Trains the spec's first run for N steps on the XLA backend and, as the baseline in the same
environment (torch 2.9), on the CPU backend (eager PyTorch), each in its own process through
`specc_xla.probe`; reports graphs compiled (warm-up, steady state, evaluation), compile time,
the first step, the median step after warm-up, and the ratio XLA / eager. On a TPU VM,
`bash benchmarks/tpu_xla.sh` runs the same probe with PJRT_DEVICE=TPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def probe(spec: Path, backend: str, steps: int, warmup: int, profile: str | None,
          device: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "specc_xla.probe", str(spec), "--backend", backend,
           "--steps", str(steps), "--warmup", str(warmup)]
    if profile:
        cmd += ["--profile", profile]
    env = dict(os.environ, PJRT_DEVICE=device)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(done.returncode)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=ROOT / "specs" / "quickstart.exp")
    ap.add_argument("--profile")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="CPU", help="PJRT_DEVICE for the XLA run (CPU or TPU)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the eager CPU baseline")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    xla = probe(args.spec, "xla", args.steps, args.warmup, args.profile, args.device)
    base = None if args.no_baseline else probe(args.spec, "cpu", args.steps, args.warmup,
                                               args.profile, "CPU")
    x = xla["xla"]
    rows = [
        ("device", xla["device"]),
        ("graphs compiled by the end of warm-up", x["at_warmup"]["compiles"]),
        (f"graphs compiled in steps {args.warmup}..{args.steps - 1}",
         x["after_steps"]["compiles"] - x["at_warmup"]["compiles"]),
        ("graphs compiled by the first evaluation",
         x["after_first_eval"]["compiles"] - x["after_steps"]["compiles"]),
        ("graphs compiled by the second evaluation",
         x["after_second_eval"]["compiles"] - x["after_first_eval"]["compiles"]),
        ("compile time, all graphs", f"{x['after_second_eval']['compile_s']:.2f} s"),
        ("first step (trace + compile + run)", f"{xla['first_step_s']:.2f} s"),
        ("median step after warm-up (XLA)", f"{xla['step_s_median'] * 1e3:.2f} ms"),
        ("CPU fallbacks", ", ".join(x["after_second_eval"]["fallback_ops"]) or "none"),
    ]
    if base is not None:
        pairs = zip(xla["losses"], base["losses"], strict=True)
        rel = max(abs(a - b) / abs(b) for a, b in pairs)
        rows += [
            ("median step after warm-up (eager CPU backend, torch 2.9)",
             f"{base['step_s_median'] * 1e3:.2f} ms"),
            ("step time ratio XLA / eager", f"{xla['step_s_median'] / base['step_s_median']:.2f}"),
            ("max relative loss difference over the steps", f"{rel:.2e}"),
        ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps({"xla": xla, "eager": base}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
