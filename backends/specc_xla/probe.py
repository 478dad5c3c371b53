"""Train a spec's first run for N steps and report what the XLA tests and benchmark measure.

    python -m specc_xla.probe SPEC [--backend xla|cpu] [--profile P] [--steps N] [--warmup W]

prints one JSON object: the training loss of every step (read each step, through the runtime's
readback), and on XLA torch_xla's counters: graphs compiled during the warm-up and after it,
compile and execution time, device-to-host transfers, and the ops that fell back to the CPU.
After the steps it evaluates twice, so the evaluation graphs are counted too. Each call is its
own process: an SPMD runtime (several PJRT devices) cannot be set up twice in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _metrics(on_xla: bool) -> dict[str, Any]:
    if not on_xla:
        return {}
    import torch_xla.debug.metrics as met

    def data(name: str) -> tuple[int, float]:
        got = met.metric_data(name)
        return (int(got[0]), float(got[1]) / 1e9) if got else (0, 0.0)  # ns -> s

    compiles, compile_s = data("CompileTime")
    executions, execute_s = data("ExecuteTime")
    if executions == 0:
        executions, execute_s = data("ExecuteReplicatedTime")
    transfers, _ = data("TransferFromDeviceTime")
    fallbacks = sorted(met.executed_fallback_ops())
    return {"compiles": compiles, "compile_s": compile_s, "executions": executions,
            "execute_s": execute_s, "transfers_from_device": transfers,
            "fallback_ops": fallbacks,
            "fallback_counts": {op: int(met.counter_value(op) or 0) for op in fallbacks}}


def probe(spec: Path, backend_name: str, profile: str | None, steps: int,
          warmup: int, resume_at: int | None = None) -> dict[str, Any]:
    """Train ``steps`` steps reading the loss each step; with ``resume_at``, save a checkpoint
    at that step and go on in a new trainer resumed from it (what `specc run` does after a
    Ctrl-C), so the two halves can be compared with an uninterrupted probe."""
    from specc.backend import load_backend
    from specc.compiler.pipeline import compile_file
    from specc.runtime.loop import Trainer

    result = compile_file(spec, backend=backend_name, profile=profile)
    if not result.ok or result.plan is None:
        sys.stderr.write(result.render())
        raise SystemExit(1)
    run = next(result.plan.experiments[0].runs())
    backend = load_backend(backend_name)
    rt = backend.runtime(run.config["train"])
    on_xla = backend_name == "xla"
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(run.config, Path(tmp) / "run", rt, spans={}, base_dir=spec.parent,
                          store_root=Path(tmp), progress=False)
        trainer.build()
        trainer.feed = rt.feed(trainer._batch, 0)
        losses, times = [], []
        at_warmup: dict[str, Any] = {}
        try:
            for step in range(steps):
                if step == warmup:
                    at_warmup = _metrics(on_xla)
                if step == resume_at:
                    trainer.save_checkpoint()
                    trainer.feed.close()
                    trainer = Trainer(run.config, Path(tmp) / "run", rt, spans={},
                                      base_dir=spec.parent, store_root=Path(tmp),
                                      progress=False)
                    trainer.build()
                    assert trainer.resume() and trainer.step == step
                    trainer.feed = rt.feed(trainer._batch, step)
                t0 = time.perf_counter()
                _, n_labels = trainer.train_step(step)
                trainer.step += 1
                losses.append(trainer.read_train_loss(n_labels))
                times.append(time.perf_counter() - t0)
            after_steps = _metrics(on_xla)
            t0 = time.perf_counter()
            first_eval = trainer.evaluate()
            first_eval_s = time.perf_counter() - t0
            after_first_eval = _metrics(on_xla)
            t0 = time.perf_counter()
            trainer.evaluate()
            second_eval_s = time.perf_counter() - t0
            after_second_eval = _metrics(on_xla)
        finally:
            trainer.feed.close()
    steady = times[warmup:]
    sharding: dict[str, int] = {}
    if on_xla:  # how the parameters are laid out over the devices
        import torch_xla

        for p in trainer.model_raw.parameters():
            spec = torch_xla._XLAC._get_xla_sharding_spec(p) or "none"
            kind = "replicated" if "replicated" in spec else "none" if spec == "none" else "sharded"
            sharding[kind] = sharding.get(kind, 0) + 1
    return {
        "backend": backend_name, "device": rt.describe(), "steps": steps, "warmup": warmup,
        "losses": losses, "eval": first_eval,
        "step_s_median": sorted(steady)[len(steady) // 2] if steady else None,
        "first_step_s": times[0] if times else None,
        "eval_s": [first_eval_s, second_eval_s], "param_sharding": sharding,
        "xla": {"at_warmup": at_warmup, "after_steps": after_steps,
                "after_first_eval": after_first_eval,
                "after_second_eval": after_second_eval} if on_xla else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m specc_xla.probe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path)
    ap.add_argument("--backend", default="xla")
    ap.add_argument("--profile")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--resume-at", type=int, help="checkpoint at this step and resume from it")
    args = ap.parse_args(argv)
    out = probe(args.spec, args.backend, args.profile, args.steps, args.warmup, args.resume_at)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
