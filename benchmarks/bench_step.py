"""Step time of `specc run`'s training step next to a hand-written loop, in one process.

    CPU overhead (tiny LoRA job):   .venv/bin/python benchmarks/bench_step.py --shape tiny
    GPU (GPT-2-124M, seq 1024, batch 16, bf16, torch.compile):
                                    python benchmarks/bench_step.py --shape gpt2-124m --device cuda

Both sides train the same model on the same data for the same steps. specc's side is its real
step (Trainer.train_step, with its background batch prefetch); the hand-written side is the loop
a careful researcher writes (batches prepared up front on the device; on CUDA: bf16 autocast,
fused AdamW, SDPA attention, TF32, torch.compile). Rounds alternate A/B/A/B; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_memory import built_trainer  # one way to build a one-run spec's Trainer

SHAPES = {
    "tiny": dict(
        model="gpt2(layers = 2, heads = 4, width = 128, context = 16, vocab = numbers(0..199))",
        data='arithmetic(ops = ["+", "-"], max = 100, train = 4500, test = 500)',
        policy="lora(rank = 8, alpha = 16)", batch=32, precision="auto", compile="false"),
    "gpt2-124m": dict(
        model="gpt2(layers = 12, heads = 12, width = 768, context = 1024, "
              "vocab = numbers(0..50240))",
        data="zipf_ngrams(vocab = 50257, rules = 4096, heldout = 4)",
        policy="full", batch=16, precision="bf16", compile="true"),
}
SPEC = """experiment bench {{
  model lm = {model}
  data text = {data}
  policy = {policy}
  train {{
    optimizer = adamw(lr = 3e-4, weight_decay = 0.01)
    batch = {batch}
    steps = 100000
    precision = {precision}
    compile = {compile}
  }}
}}
"""


def specc_trainer(shape: str, device: str, tmp: Path) -> Any:
    trainer = built_trainer(SPEC.format(**SHAPES[shape]), device, tmp)
    trainer.feed = trainer.rt.feed(trainer._batch, 0)
    return trainer


def hand_loop(trainer: Any, device: str, steps: int) -> tuple[Any, list[dict[str, Any]]]:
    """The same model (a fresh copy of specc's initial weights) in a plain loop."""
    import copy

    import torch

    model = copy.deepcopy(trainer.model_raw).to(device)
    if hasattr(trainer.model, "_orig_mod") or trainer.train.get("compile"):
        model = torch.compile(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01,
                            **({"fused": True} if device == "cuda" else {}))
    batches = [{k: (v.to(device) if hasattr(v, "to") else v)
                for k, v in trainer._batch(s).items()} for s in range(steps)]
    return (model, opt, params), batches


def hand_step(state: Any, batch: dict[str, Any], device: str) -> Any:
    import torch
    import torch.nn.functional as F

    model, opt, params = state
    ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
           else torch.autocast("cpu", enabled=False))
    with ctx:
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch.get("attention_mask")).logits
        labels = batch["labels"]
        if not batch.get("shifted"):
            logits, labels = logits[:, :-1], labels[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def timed(fn: Any, steps: int, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="tiny")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=50, help="measured steps per round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        trainer = specc_trainer(args.shape, args.device, Path(d))
        total = args.warmup + args.rounds * args.steps
        state, batches = hand_loop(trainer, args.device, total)
        s_step = [0]
        h_step = [0]

        def specc_fn() -> None:
            trainer.train_step(s_step[0])
            s_step[0] += 1

        def hand_fn() -> None:
            hand_step(state, batches[h_step[0] % len(batches)], args.device)
            h_step[0] += 1

        timed(specc_fn, args.warmup, args.device)
        timed(hand_fn, args.warmup, args.device)
        mem = {}
        s_times, h_times = [], []
        for _ in range(args.rounds):
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            s_times.append(timed(specc_fn, args.steps, args.device))
            if args.device == "cuda":
                mem["specc"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()
            h_times.append(timed(hand_fn, args.steps, args.device))
            if args.device == "cuda":
                mem["hand"] = torch.cuda.max_memory_allocated() / 2**30
        trainer.feed.close()
        s_med, h_med = statistics.median(s_times), statistics.median(h_times)
        model = trainer.model_raw
        n_params = sum(p.numel() for p in model.parameters())
        cfg = model.config
        seq = trainer.data.seq_len()
        batch = int(trainer.train["batch"])
        tokens = batch * seq
        layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
        head_dim = cfg.hidden_size // heads
        flops_per_token = 6 * n_params + 12 * layers * heads * head_dim * seq
        peak = 989e12 if args.device == "cuda" else None
        out: dict[str, Any] = {"shape": args.shape, "device": args.device,
                               "device_name": (torch.cuda.get_device_name()
                                               if args.device == "cuda" else "cpu"),
                               "params": n_params, "tokens_per_step": tokens}
        for name, t in (("specc", s_med), ("hand", h_med)):
            tps = tokens / t
            row = {"step_ms": round(t * 1000, 3), "tokens_per_s": round(tps)}
            if peak:
                row["mfu"] = round(flops_per_token * tps / peak, 4)
                row["peak_mem_gib"] = round(mem.get(name, 0.0), 2)
            out[name] = row
        out["ratio_step_time_specc_over_hand"] = round(s_med / h_med, 4)
        out["ratio_throughput_specc_over_hand"] = round(h_med / s_med, 4)
        print(json.dumps(out, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
