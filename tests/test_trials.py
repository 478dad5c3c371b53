"""Trials start from a fork server and stay isolated (Note [Trial start]); the package graph
has no cycle (the layers only look down)."""

from __future__ import annotations

import ast
import json
import os
import resource
import signal
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ trial targets (in children)

def abort_trial() -> int:
    os.abort()
    return 0


def raising_trial() -> int:
    raise ValueError("boom in a trial")


def leaking_trial() -> int:
    hoard = [bytearray(64 << 20) for _ in range(5)]  # 320 MiB the worker must never see
    return 0 if len(hoard) == 5 else 1


def good_trial(path: str) -> int:
    Path(path).write_text("trained")
    print("a line of output")
    return 0


def chatty_trial(payload_path: str) -> int:
    """Prints far more than a pipe holds, then fails with a reason (the hardening test)."""
    payload = json.loads(Path(payload_path).read_text())
    for i in range(4000):
        print(f"evaluation line {i:05d} " + "x" * 60)
    Path(payload["result"]).write_text(json.dumps({"code": 1, "status": "failed",
                                                   "reason": "boom", "row": {}}))
    return 1


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_crash_an_exception_and_a_leak_stay_in_their_trials(tmp_path: Path) -> None:
    from specc.sweeps import launch

    before = _rss_mib()
    procs = {name: launch.start(f"test_trials.{name}", args, tmp_path / f"{name}.log")
             for name, args in (("abort_trial", ()), ("raising_trial", ()),
                                ("leaking_trial", ()),
                                ("good_trial", (str(tmp_path / "good.out"),)))}
    deadline = time.time() + 120
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(0.05)
    codes = {name: p.poll() for name, p in procs.items()}
    assert codes == {"abort_trial": -signal.SIGABRT, "raising_trial": 1, "leaking_trial": 0,
                     "good_trial": 0}
    assert "ValueError: boom in a trial" in (tmp_path / "raising_trial.log").read_text()
    assert (tmp_path / "good.out").read_text() == "trained"
    assert "a line of output" in (tmp_path / "good_trial.log").read_text()
    assert _rss_mib() - before < 100, "a trial's memory showed up in the worker"


def test_trials_start_in_a_fraction_of_a_second(tmp_path: Path) -> None:
    """The fork server imports torch once; each later trial is a fork (the benchmark measures
    the whole machinery per trial: benchmarks/bench_sweep_overhead.py)."""
    from specc.sweeps import launch

    launch.start("test_trials.good_trial", (str(tmp_path / "warm"),), tmp_path / "w.log").wait(120)
    t0 = time.perf_counter()
    p = launch.start("test_trials.good_trial", (str(tmp_path / "x"),), tmp_path / "x.log")
    assert p.wait(60) == 0
    print(f"a warm trial start and exit took {time.perf_counter() - t0:.3f} s")


# ------------------------------------------------------------------ layers


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "specc":
        return "specc." + parts[1] if len(parts) > 1 else None
    if parts[0] in ("specc_torch", "specc_xla"):
        return parts[0]
    return None


def _imports(path: Path, me: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # module level and inside functions
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".")[: -node.level or None]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for top in ("specc", "backends"):
        for f in (ROOT / top).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            parts = parts[1:] if parts[0] == "backends" else parts
            me = ".".join(p for p in parts if p != "__init__")
            src = _package(me)
            if src is None:
                continue
            for t in _imports(f, me):
                dst = _package(t)
                if dst and dst != src and dst != "specc.__init__":
                    edges.setdefault(src, set()).add(dst)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = _graph()

    def reach(a: str) -> set[str]:
        seen, stack = set(), [a]
        while stack:
            for b in edges.get(stack.pop(), ()):
                if b not in seen:
                    seen.add(b)
                    stack.append(b)
        return seen

    cycles = sorted(f"{a} -> {b}" for a in edges for b in edges[a] if a in reach(b))
    assert not cycles, f"packages import each other: {cycles}"
    # the runtime runs one run and knows nothing of sweeps or of what orchestrates it
    assert not edges.get("specc.runtime", set()) & {"specc.sweeps", "specc.orchestrate"}


def test_backends_depend_only_on_the_backend_contract() -> None:
    allowed = {"specc.backend", "specc.diagnostics"}
    for pkg in ("specc_torch", "specc_xla"):
        for f in (ROOT / "backends" / pkg).glob("*.py"):
            if f.name == "probe.py":  # a measuring tool that drives a whole run, not the backend
                continue
            used = {_package(t) for t in _imports(f, f"{pkg}.{f.stem}")} - {None, pkg}
            assert used <= allowed | {"specc_torch"}, (f, used - allowed)
