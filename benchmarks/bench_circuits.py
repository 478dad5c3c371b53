"""EAP-IG time and peak memory per 100 prompts on tiny models (CPU by default), how they grow
with layers and heads, and the cost against exact patching.

    .venv/bin/python benchmarks/bench_circuits.py
    python benchmarks/bench_circuits.py --device cuda --pythia160m   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pairs(n: int) -> list[tuple[list[int], list[int], int]]:
    from specc.components.data import TaskData
    from specc.components.vocab import NumbersVocab

    data = TaskData({"component": "arithmetic", "ops": ["+", "-"], "max": 100, "train": 10,
                     "test": n, "seed": 0, "corrupt": {"component": "flip_operator"}},
                    NumbersVocab(0, 199), 16)
    return data.pairs()[:n]


def model(layers: int, heads: int, width: int, device: str) -> object:
    from specc.components.models import build_model

    cfg = {"component": "pythia", "layers": layers, "heads": heads, "width": width,
           "context": 2048, "mlp_ratio": 4, "dropout": 0.0, "rotary_pct": 0.25}
    return build_model(cfg, 216, base=ROOT, store_root=ROOT, attention="eager").to(device).eval()


def measure(fn: object, device: str, repeat: int = 3) -> tuple[float, float]:
    """Best of ``repeat`` wall times; peak memory above the level before the call (GPU:
    allocator peak; CPU: resident set sampled every 2 ms by a thread)."""
    import threading

    import psutil
    import torch

    best, peak = float("inf"), 0.0
    proc = psutil.Process()
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        base = proc.memory_info().rss
        top = [base]
        done = threading.Event()

        def sample(done: threading.Event = done, top: list[int] = top) -> None:
            while not done.is_set():
                top[0] = max(top[0], proc.memory_info().rss)
                time.sleep(0.002)

        thread = threading.Thread(target=sample)
        thread.start()
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
        done.set()
        thread.join()
        used = (torch.cuda.max_memory_allocated() if device == "cuda" else top[0] - base)
        peak = max(peak, used / 2**20)
    return best, peak


def main() -> None:
    from specc.circuits.attribute import Attributor

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pythia160m", action="store_true", help="12 layers, 12 heads, width 768")
    args = ap.parse_args()
    ps = pairs(100)
    shapes = ([(12, 12, 768)] if args.pythia160m else
              [(2, 4, 64), (4, 4, 64), (8, 4, 64), (4, 2, 64), (4, 8, 64)])
    rows = []
    for layers, heads, width in shapes:
        m = model(layers, heads, width, args.device)
        att = Attributor(m, ps, "kl_last_token", batch=50)
        att.eap_ig(1)  # warm-up
        t, mem = measure(lambda att=att: att.eap_ig(5), args.device)
        row = {"layers": layers, "heads": heads, "width": width, "edges": int(att.mask.sum()),
               "prompts": att.n, "eap_ig_s_per_100": round(t * 100 / att.n, 3),
               "eap_ig_peak_mb": round(mem, 1)}
        if (layers, heads) == (2, 4):
            te, _ = measure(att.exact, args.device)
            row["exact_s_per_100"] = round(te * 100 / att.n, 3)
            row["exact_over_eap_ig"] = round(te / t, 1)
        rows.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
