"""The critical-batch-size strategy: per batch size, race the learning rates to the target loss.

For each batch size B the learning-rate candidates train in lockstep, evaluated (raw and EWA
weights) on the held-out set; the first to reach the hardest target wins and the others stop,
which gives S(B), the steps to target. Targets come from reference runs (``loss_at``) or are
given. Then S(B) = a + b/B is fitted and B* found by the overhead rule (cbs_fit.py).

Note [Shared CBS]: a race is the unit of shared work (its learning rates stop together, so it
cannot be split). Each race is claimed through a lock in the store (``.cbs/batch-B``), so any
number of `specc run` processes on one store (`workers = N`, other terminals, other machines on
a shared filesystem) train each race once: the reference races first (every process needs their
targets, so the others wait for them), then every other batch size, a busy one passed over and
waited for at the end (taken over, from its start, if its process died). Finished, stopped and
failed runs are read back from the store, so every process writes the same cbs.json; the
gradient noise scale is measured by the process that trained the reference race and stored in
the run it measured (noise_scale.json).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from specc.compiler import ir
from specc.compiler.plan import RunMaker
from specc.runtime.loop import RunStopped, Trainer
from specc.store.runs import MetricsLog, now, read_manifest, run_dir, write_manifest
from specc.sweeps import cbs_fit

NOISE = "noise_scale.json"


def _const(v: ir.Value | None) -> Any:
    return v.value if isinstance(v, ir.Const) else None


class Race:
    """The runs of one batch size, one per learning rate, advanced together."""

    def __init__(self, ctx: CBS, batch: int, lrs: list[float], max_tokens: int) -> None:
        self.ctx, self.batch = ctx, batch
        self.histories: dict[float, list[dict[str, Any]]] = {}
        self.trainers: dict[float, Trainer] = {}
        self.failed: dict[float, str] = {}
        self.paths: dict[float, Path] = {}
        self.tokens = 0
        self.max_tokens = max_tokens
        for lr in lrs:
            binding = {"train.batch": ir.Const(value=batch)}
            if lr is not None:
                binding[ctx.lr_name] = ir.Const(value=lr)
            run = ctx.maker.make(binding)  # Note [One way to make a run]
            config, h = run.config, run.hash
            assert config["train"]["tokens"] == max_tokens, (config["train"], max_tokens)
            path = self.paths[lr] = run_dir(ctx.root, ctx.exp.name, h)
            manifest = read_manifest(path)
            if manifest and manifest.get("status") in ("finished", "stopped", "failed"):
                # done before, here or by another process (Note [Shared CBS])
                self.histories[lr] = MetricsLog(path / "metrics.jsonl").rows()
                self.tokens += int(manifest.get("tokens") or 0)
                if manifest["status"] == "failed":
                    self.failed[lr] = str(manifest.get("reason"))
                continue
            tr = Trainer(config, path, ctx.runtime(config), spans={}, base_dir=ctx.base,
                         store_root=ctx.root, progress=False)
            tr.build()
            tr.log.path.parent.mkdir(parents=True, exist_ok=True)
            if tr.log.path.exists():
                tr.log.truncate_after(0)
            write_manifest(path, {"experiment": ctx.exp.name, "hash": h, "status": "running",
                                  "name": f"{ctx.exp.name}[batch={batch},lr={lr:g}]",
                                  "config": config, "started": now(), "strategy": "cbs",
                                  "pid": os.getpid()})
            self.trainers[lr] = tr
            self.histories[lr] = []
        self.interval = max(1, min(ctx.eval_every, self._steps_max() // 40 or 1))

    def _steps_max(self) -> int:
        tr = next(iter(self.trainers.values()), None)
        seq = tr.data.seq_len() if tr is not None else 64
        return math.ceil(self.max_tokens / (self.batch * seq))

    def advance(self, tr: Trainer, lr: float) -> dict[str, Any] | None:
        """An interval of steps and an evaluation through the Trainer's public interface
        (Note [One training loop]); None when the run diverged."""
        try:
            row = tr.advance(self.interval)
        except RunStopped as exc:
            self.failed[lr] = exc.reason
            return None
        self.histories[lr].append(row)
        return row

    def run(self, hardest: float) -> None:
        """Advance every live run an interval at a time until one reaches ``hardest``."""
        alive = dict(self.trainers)
        while alive:
            hit = False
            for lr, tr in list(alive.items()):
                row = self.advance(tr, lr)
                if row is None or tr.tokens >= self.max_tokens:
                    self._close(lr, tr, "failed" if row is None else "finished")
                    del alive[lr]
                    continue
                if any(k in row and row[k] <= hardest for k in self.ctx.keys):
                    hit = True
            if hit:  # the race is decided: the others cannot reach it in fewer steps
                for lr, tr in alive.items():
                    self._close(lr, tr, "stopped")
                return

    def _close(self, lr: float, tr: Trainer, status: str) -> None:
        self.tokens += tr.tokens
        manifest = read_manifest(tr.path) or {}
        manifest.update(status=status, finished=now(), step=tr.step, tokens=tr.tokens,
                        reason=self.failed.get(lr))
        write_manifest(tr.path, manifest)

    def steps(self, target: float) -> tuple[int | None, float | None]:
        best: tuple[int | None, float | None] = (None, None)
        for lr, hist in self.histories.items():
            s = cbs_fit.steps_to_target(hist, target, self.ctx.keys)
            if s is not None and (best[0] is None or s < best[0]):
                best = (s, lr)
        return best


class CBS:
    def __init__(self, runner: Any, exp: ir.Experiment) -> None:
        assert exp.sweep is not None
        self.runner, self.exp, self.sweep = runner, exp, exp.sweep
        self.root, self.base = runner.root, runner.spec.parent
        self.maker = RunMaker(exp)
        axes = {a.path: [_const(v) for v in a.values] for a in self.sweep.axes}
        self.batches = [int(b) for b in axes.pop("train.batch")]
        race = [a for a in self.sweep.axes if a.race]
        self.lr_name = race[0].path if race else "lr"
        self.lrs = [float(x) for x in axes.get(self.lr_name, [None]) if x is not None] or [None]
        self.reference = int(_const(self.sweep.setting("reference")))
        self.overhead = float(_const(self.sweep.setting("overhead")))
        self.max_tokens = int(_const(self.sweep.setting("max_tokens")))
        self.free = _const(self.sweep.setting("fit")) == "free_exponent"
        train = {f.path: f.value for f in exp.fields}
        ewa = train.get("train.ewa")
        decays = [_const(i) for i in ewa.items] if isinstance(ewa, ir.ListV) else []
        self.keys = ["loss", *[f"loss@ewa{d:g}" for d in decays]]
        every = _const(train.get("train.eval_every")) or 100
        self.eval_every = int(every)

    def runtime(self, config: dict[str, Any]) -> Any:
        from specc.backend import choose, load_backend

        name = choose(self.runner.opts.backend or config.get("backend") or "auto")
        return load_backend(name).runtime(config["train"])

    def targets(self) -> list[dict[str, Any]]:
        raw = self.sweep.setting("target")
        items = raw.items if isinstance(raw, ir.ListV) else (raw,)
        out = []
        for item in items:
            if isinstance(item, ir.Op) and item.op == "loss_at":
                batch, tokens = (self._num(a) for a in item.args)
                out.append({"kind": "loss_at", "batch": int(batch), "tokens": int(tokens)})
            else:
                out.append({"kind": "given", "value": float(_const(item))})
        return out

    def _num(self, v: ir.Value) -> float:
        if isinstance(v, ir.Var) and v.name == "reference":
            return float(self.reference)
        value = _const(v)
        if value is None:
            msg = f"loss_at needs numbers known before the sweep runs, got {ir.plain(v)}"
            raise ValueError(msg)
        return float(value)


def run_cbs(runner: Any, exp: ir.Experiment, full_grid: bool = False) -> int:
    """Run the whole CBS sweep; writes cbs.json and prints the S(B) table, the fit and B*.

    ``full_grid`` is the baseline the benchmark compares against: no race and no early stop,
    every (batch, lr) run trains to max_tokens and S(B) is read from the complete histories.
    """
    ctx = CBS(runner, exp)
    say = runner.say
    t0 = time.time()
    targets = ctx.targets()
    say(f"cbs {exp.name}: batches {ctx.batches}, lrs {ctx.lrs} (race), reference "
        f"{ctx.reference}, max {ctx.max_tokens:,} tokens per run")
    races: dict[int, Race] = {}
    spent = _reference_targets(ctx, targets, races, say)  # 1. the loss_at targets
    hardest = min(t["value"] for t in targets)
    gns = _stored_noise(races.get(ctx.reference))
    spent += _race_batches(ctx, races, hardest, full_grid, say)  # 2. every other batch size
    results = _fits(ctx, targets, races)  # 3. S(B), fits and B* per target
    out = {"experiment": exp.name, "batches": ctx.batches, "lrs": ctx.lrs,
           "reference": ctx.reference, "overhead": ctx.overhead, "max_tokens": ctx.max_tokens,
           "results": results, "tokens_spent": spent,
           "tokens_full_grid": len(ctx.batches) * len(ctx.lrs) * ctx.max_tokens,
           "seconds": round(time.time() - t0, 1), "gradient_noise_scale": gns}
    with_bstar = [r for r in results if "b_star" in r and r["target"]["kind"] == "loss_at"]
    if len(with_bstar) >= 2:
        out["b_star_vs_tokens"] = cbs_fit.fit_power([r["target"]["tokens"] for r in with_bstar],
                                                    [r["b_star"] for r in with_bstar])
    path = Path(runner.root) / exp.name / ("cbs_full_grid.json" if full_grid else "cbs.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")  # several processes write the same
    tmp.write_text(json.dumps(out, indent=2, default=str))
    os.replace(tmp, path)
    say(render(out))
    say(f"  results in {path}")
    return 0


def _reference_targets(ctx: CBS, targets: list[dict[str, Any]], races: dict[int, Race],
                       say: Any) -> int:
    """Reference runs fix the loss_at targets: the best raw or EWA held-out loss at T tokens.
    Returns the tokens spent."""
    spent = 0
    for t in targets:
        if t["kind"] != "loss_at":
            continue
        race = races.get(t["batch"])
        budget = max(x["tokens"] for x in targets if x["kind"] == "loss_at"
                     and x["batch"] == t["batch"])
        if race is None:  # every lr trains to the reference budget
            race = _claimed(ctx, t["batch"], budget, -math.inf, wait=True, say=say)
            assert race is not None
            races[t["batch"]] = race
            spent += race.tokens
        best = math.inf
        for hist in race.histories.values():
            rows = [r for r in hist if r["tokens"] <= t["tokens"] * 1.001] or hist[:1]
            if rows:
                best = min(best, *(rows[-1][k] for k in ctx.keys if k in rows[-1]))
        t["value"] = best
        say(f"  target from batch {t['batch']} at {t['tokens']:,} tokens: loss {best:.4f}")
    return spent


def _race_batches(ctx: CBS, races: dict[int, Race], hardest: float, full_grid: bool,
                  say: Any) -> int:
    """Race every batch size not raced yet to the hardest target; returns the tokens spent."""
    spent = 0
    later = []
    goal = -math.inf if full_grid else hardest
    for b in ctx.batches:
        if b in races:
            continue
        race = _claimed(ctx, b, ctx.max_tokens, goal, wait=False)
        if race is None:
            later.append(b)
        else:
            spent += _report(races, b, race, hardest, say)
    for b in later:  # the races other processes hold: done by now, or taken over here
        say(f"  batch {b}: another process is racing it; waiting")
        spent += _report(races, b, _claimed(ctx, b, ctx.max_tokens, goal, wait=True),
                         hardest, say)
    return spent


def _report(races: dict[int, Race], b: int, race: Race | None, hardest: float,
            say: Any) -> int:
    """Keep a batch size's race and say its steps to the target; returns its tokens."""
    assert race is not None
    races[b] = race
    s, lr = race.steps(hardest)
    say(f"  batch {b}: " + (f"{s} steps to target (lr {lr:g})" if s else "target not reached")
        + (f"; diverged: {sorted(race.failed)}" if race.failed else ""))
    return race.tokens


def _claimed(ctx: CBS, batch: int, budget: int, hardest: float, wait: bool,
             say: Any = None) -> Race | None:
    """The race of ``batch`` under its claim (Note [Shared CBS]): trained here if no other
    process holds it, else None (``wait=False``) or, once it is released, read back (and any
    run its process left unfinished trained here)."""
    from specc.runtime.execute import run_lock

    with run_lock(Path(ctx.root) / ctx.exp.name / ".cbs" / f"batch-{batch}", wait) as held:
        if not held:
            return None
        race = Race(ctx, batch, ctx.lrs, budget)
        race.run(hardest)
        if batch == ctx.reference and say is not None:
            _noise_scale(ctx, race, say)
        return race


def _fits(ctx: CBS, targets: list[dict[str, Any]],
          races: dict[int, Race]) -> list[dict[str, Any]]:
    """Per target: the S(B) table, the fit and B* by the overhead rule."""
    results = []
    for t in targets:
        rows = []
        for b in ctx.batches:
            s, lr = races[b].steps(t["value"]) if b in races else (None, None)
            rows.append({"batch": b, "steps": s, "lr": lr})
        pts = [(r["batch"], r["steps"]) for r in rows if r["steps"]]
        entry: dict[str, Any] = {"target": t, "table": rows}
        try:
            fit = cbs_fit.fit_steps([p[0] for p in pts], [p[1] for p in pts], ctx.free)
            entry["fit"] = fit
            entry["b_star"] = cbs_fit.critical_batch(fit, ctx.reference, ctx.overhead)
        except (ValueError, RuntimeError) as exc:
            entry["fit_error"] = str(exc)
        results.append(entry)
    return results


def _noise_scale(ctx: CBS, race: Race | None, say: Any) -> dict[str, float] | None:
    """B_simple at the end of the best reference run, from gradients at B_ref and 8·B_ref."""
    if race is None or not race.trainers:
        return None

    losses = {lr: min((r["loss"] for r in h), default=math.inf)
              for lr, h in race.histories.items() if lr in race.trainers}
    tr = race.trainers[min(losses, key=losses.__getitem__)]
    small, big = ctx.reference, 8 * ctx.reference
    out = cbs_fit.gradient_noise_scale((small, tr.gradient_sq_norm(small)),
                                       (big, tr.gradient_sq_norm(big)))
    say(f"  gradient noise scale at the reference: B_simple = {out['b_simple']:.1f}")
    (tr.path / NOISE).write_text(json.dumps(out))  # read back by every process
    return out


def _stored_noise(race: Race | None) -> dict[str, float] | None:
    """The gradient noise scale stored beside the reference race's run that measured it."""
    for path in (race.paths.values() if race is not None else ()):
        if (path / NOISE).is_file():
            return json.loads((path / NOISE).read_text())  # type: ignore[no-any-return]
    return None


def render(out: dict[str, Any]) -> str:
    lines = []
    for r in out["results"]:
        t = r["target"]
        label = (f"loss_at(batch={t['batch']}, tokens={t['tokens']:,})" if t["kind"] == "loss_at"
                 else "given")
        lines.append(f"  target {t['value']:.4f} ({label})")
        lines.append("    batch  steps  lr")
        for row in r["table"]:
            steps = row["steps"] if row["steps"] is not None else "-"
            lr = f"{row['lr']:g}" if row["lr"] is not None else "-"
            lines.append(f"    {row['batch']:>5}  {steps!s:>5}  {lr}")
        if "fit" in r:
            f = r["fit"]
            lines.append(f"    fit S(B) = {f['a']:.1f} + {f['b']:.1f}/B^{f['alpha']:.2f} "
                         f"(rms log error {f['rms_log_error']:.3f}); B* = {r['b_star']:.1f}")
        else:
            lines.append(f"    no fit: {r.get('fit_error')}")
    if out.get("gradient_noise_scale"):
        lines.append(f"  B_simple (gradient noise scale) = "
                     f"{out['gradient_noise_scale']['b_simple']:.1f}")
    lines.append(f"  tokens: {out['tokens_spent']:,} spent vs {out['tokens_full_grid']:,} for the "
                 f"full grid ({out['tokens_spent'] / out['tokens_full_grid']:.1%})")
    return "\n".join(lines)


__all__ = ["RunStopped", "run_cbs"]
