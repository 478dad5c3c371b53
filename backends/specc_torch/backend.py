"""The torch backend's capability records and its runtime: small parts the shared loop calls."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import attrs

from specc.backend import BUILTIN, Capabilities


@attrs.frozen
class TorchBackend:
    """CPU or CUDA through PyTorch. Capabilities match Note [Built-in capabilities]."""

    name: str
    capabilities: Capabilities

    def available(self) -> bool:
        import torch

        return self.name == "cpu" or torch.cuda.is_available()

    def runtime(self, train: dict[str, Any]) -> TorchRuntime:
        return TorchRuntime(self.name, train)


BACKEND_CPU = TorchBackend("cpu", BUILTIN["cpu"])
BACKEND_CUDA = TorchBackend("cuda", BUILTIN["cuda"])


class TorchRuntime:
    """The parts the loop template calls: placement, precision, execution, feed, distribution."""

    def __init__(self, kind: str, train: dict[str, Any]) -> None:
        import torch

        self.kind = kind
        self.train = train
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if kind == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        precision = train.get("precision", "auto")
        if precision == "auto":
            precision = "bf16" if kind == "cuda" else "fp32"
        self.precision = precision
        self.scaler = None
        if kind == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 for what stays in fp32
            if precision == "fp16":
                self.scaler = torch.amp.GradScaler("cuda")
        self._ddp = False
        self.strategy = str(train.get("strategy") or "auto")
        self.template: Any = None  # Note [Sharded checkpoints]: final/'s unsharded skeleton

    # -- placement
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> None:
        import numpy as np
        import torch

        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def describe(self) -> str:
        import torch

        if self.kind == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"

    # -- precision
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def optimizer_kwargs(self, cfg: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "cuda" and cfg["component"] in ("adam", "adamw"):
            return {"fused": True}
        return {}

    def attention(self) -> str:
        att = self.train.get("attention", "auto")
        return "eager" if att == "eager" else "sdpa"

    # -- distribution and execution
    def setup_distributed(self) -> None:
        import torch.distributed as dist

        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.kind == "cuda" else "gloo")

    @property
    def sharded(self) -> bool:
        """strategy = fsdp over several processes: FSDP2 shards parameters, gradients and
        optimizer state (Note [Sharded checkpoints])."""
        return self.strategy == "fsdp" and self.world > 1

    def wrap(self, model: Any, shapes: int = 1) -> Any:
        """FSDP2 (strategy = fsdp) or DDP when several processes run; torch.compile when the
        spec asks for it."""
        import torch

        model = model.to(self.device)
        if self.sharded:
            from specc_torch.fsdp import shard, skeleton

            if self.is_main:
                self.template = skeleton(model)
            model = shard(model, self.kind, self.world, self.precision)
        elif self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                model, device_ids=[self.local_rank] if self.kind == "cuda" else None)
            self._ddp = True
        if self.compiles:
            if self.train.get("compile", "auto") == "auto":
                # a default-on rewrite must not fail a run that runs eagerly: a graph that does
                # not compile falls back to eager (torch warns)
                torch._dynamo.config.suppress_errors = True
            model = torch.compile(model)
        return model

    @property
    def compiles(self) -> bool:
        """train.compile = true, or auto with the compile rewrite on CUDA (Note [Rewrites])."""
        asked = self.train.get("compile", "auto")
        if asked == "auto":
            return self.kind == "cuda" and "compile" in (self.train.get("rewrites") or ())
        return bool(asked)

    def memory_budget(self) -> int:
        """Bytes a step may use: train.memory (GiB), else what the device has free plus what
        this process already holds (its weights are part of the step's estimate)."""
        import torch

        gib = self.train.get("memory")
        if gib:
            return int(float(gib) * 2**30)
        if self.kind == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free + torch.cuda.memory_allocated(self.device))
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages)

    def no_sync(self, model: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        if self._ddp and not last:
            return model.no_sync()  # type: ignore[no-any-return]
        return contextlib.nullcontext()

    def all_sum(self, value: Any) -> Any:
        import torch.distributed as dist

        if self.world > 1:
            dist.all_reduce(value)
        return value

    def shard(self, batch: dict[str, Any]) -> dict[str, Any]:
        """This rank's rows of a global batch (rank-strided)."""
        if self.world == 1:
            return batch
        return {k: (v[self.rank:: self.world] if hasattr(v, "shape") else v)
                for k, v in batch.items()}

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.world > 1 and dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    # -- data feed
    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "cpu":
            return batch
        return {k: (v.to(self.device, non_blocking=True) if hasattr(v, "to") else v)
                for k, v in batch.items()}

    def feed(self, make: Any, start: int) -> Any:
        """Batches by step, prepared (and pinned on CUDA) in a background thread, then this
        rank's rows sent to the device (non-blocking) when the step takes them."""
        from specc.backend import Prefetcher

        return Prefetcher(make, start, pin=self.kind == "cuda",
                          place=lambda b: self.to_device(self.shard(b)))

    # -- execution
    def compile_step(self, fn: Any) -> Any:
        """The step runs eagerly (torch.compile, when asked, wraps the model instead)."""
        return fn

    def zero(self) -> Any:
        import torch

        return torch.zeros((), device=self.device)

    def boundary(self) -> None:
        """Between evaluation batches: nothing to cut on an eager backend."""

    def host(self, state: Any) -> Any:
        """A state dict ready to save (already on the host for CPU; torch.save maps CUDA)."""
        return state

    def host_model(self, model: Any) -> Any:
        """The model with whole tensors: gathered from every rank's shards when sharded (a
        collective: every rank calls it; rank 0 gets the model, the others None)."""
        if not self.sharded:
            return model
        from specc_torch.fsdp import filled, whole_state

        state = whole_state(model)
        return filled(self.template, state) if self.is_main else None

    # -- host readback
    def read(self, value: Any) -> float:
        if hasattr(value, "full_tensor"):  # a DTensor (a norm over sharded gradients)
            value = value.full_tensor()
        return float(value.item())

    def oom_types(self) -> tuple[type[BaseException], ...]:
        import torch

        return (torch.OutOfMemoryError,)

    def memory(self) -> Iterator[float]:
        import torch

        if self.kind == "cuda":
            yield torch.cuda.max_memory_allocated(self.device) / 2**20
