"""The XLA runtime: the parts the shared loop calls, lowered to torch-xla 2.9.

What it lowers to (../shared/research/backends_distributed.md section 1):

- the device step is one `torch_xla.compile(full_graph=True)` region with a graph budget sized
  by the plan's shape policy, so a host read inside it or an unforeseen shape is an error;
- batches come through `MpDeviceLoader` (background upload; under SPMD sharded on the batch
  dimension as they are sent);
- the loss is summed on the device inside the step and read only at log boundaries, through a
  step closure;
- several devices are one process with an SPMD mesh `(fsdp, model) = (n, 1)`: data parallel
  replicates the parameters (the compiler inserts the gradient all-reduce), `strategy = fsdp`
  wraps the model in FSDPv2 (parameters sharded over the `fsdp` axis);
- precision: bf16 autocast on TPU, fp32 on PJRT CPU;
- on TPU, a persistent compilation cache shared by the processes of a sweep.

None of the deprecated APIs (`xm.mark_step`, `xm.xla_device`, `xrt_*`) is used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from specc.backend import BUILTIN, Capabilities
from specc.diagnostics import SpeccError

# Note [Graph budget]: the step compiles one graph per sequence length of the shape policy, plus
# one warm-up graph: the first step runs with no gradients and no optimizer state yet. Measured
# on PJRT CPU with AdamW, a cosine schedule, clipping and an EWA: step 0 and step 1 compile,
# nothing compiles after (tests/xla/test_xla.py checks it for every profile of its spec).
WARMUP_GRAPHS = 1


@attrs.frozen
class XlaBackend:
    """TPU (or PJRT CPU) through torch-xla; capabilities match Note [Built-in capabilities]."""

    name: str
    capabilities: Capabilities
    unavailable_help: str = ("the XLA backend lives in its own environment: "
                             "bash backends/xla-env.sh, then run specc from it")

    def available(self) -> bool:
        return importlib.util.find_spec("torch_xla") is not None

    def runtime(self, train: dict[str, Any]) -> XlaRuntime:
        return XlaRuntime(train)


BACKEND_XLA = XlaBackend("xla", BUILTIN["xla"])


def _pjrt_device() -> str:
    """PJRT_DEVICE, set explicitly (TPU when libtpu is installed, else CPU) as the brief asks."""
    if "PJRT_DEVICE" not in os.environ:
        has_tpu = importlib.util.find_spec("libtpu") is not None
        os.environ["PJRT_DEVICE"] = "TPU" if has_tpu else "CPU"
    return os.environ["PJRT_DEVICE"]


class XlaRuntime:
    """Placement, precision, execution, feed and distribution on XLA devices."""

    scaler = None  # bf16 needs no gradient scaling; fp16 is refused by `check`
    world = 1  # one process: under SPMD the global batch is one tensor sharded by the compiler
    rank = 0
    local_rank = 0

    def __init__(self, train: dict[str, Any]) -> None:
        self.train = train
        self.devices = int(train.get("devices") or 1)
        self.pjrt = _pjrt_device()
        if self.pjrt == "CPU" and self.devices > 1:
            have = int(os.environ.setdefault("CPU_NUM_DEVICES", str(self.devices)))
            if have != self.devices:
                msg = (f"train.devices = {self.devices} but CPU_NUM_DEVICES={have}; unset "
                       "CPU_NUM_DEVICES (specc sets it) or make the two equal")
                raise SpeccError(msg)
        self.cache = _compilation_cache()
        import torch_xla
        import torch_xla.runtime as xr

        strategy = str(train.get("strategy") or "auto")
        self.fsdp = strategy == "fsdp"
        self.spmd = self.devices > 1 or self.fsdp
        if self.spmd:
            xr.use_spmd()  # before any XLA tensor exists
        self.device = torch_xla.device()
        count = xr.global_runtime_device_count()
        if self.spmd and count != self.devices:
            msg = (f"train.devices = {self.devices} but this host has {count} {self.pjrt} "
                   "devices; an SPMD mesh spans all of them (set TPU_VISIBLE_CHIPS to use fewer)")
            raise SpeccError(msg)
        self.mesh = None
        if self.spmd:
            import numpy as np
            import torch_xla.distributed.spmd as xs

            self.mesh = xs.Mesh(np.arange(count), (count, 1), ("fsdp", "model"))
            xs.set_global_mesh(self.mesh)
        precision = str(train.get("precision") or "auto")
        if precision == "auto":
            precision = "bf16" if self.pjrt == "TPU" else "fp32"
        self.precision = precision
        self.graphs = 1 + WARMUP_GRAPHS

    # -- placement
    @property
    def is_main(self) -> bool:
        return True

    def seed(self, seed: int) -> None:
        import numpy as np
        import torch
        import torch_xla

        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)  # models are built on the host: same weights as the CPU backend
        torch_xla.manual_seed(seed)  # dropout and other randomness on the device

    def describe(self) -> str:
        where = f"{self.pjrt} via torch-xla"
        if not self.spmd:
            return f"{where} (1 device)"
        how = "FSDPv2" if self.fsdp else "data parallel"
        return f"{where} ({self.devices} devices, SPMD {how})"

    # -- precision
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.precision == "bf16":
            return torch.autocast("xla", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimizer_kwargs(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {}

    def attention(self) -> str:
        # SDPA's mask short-cut reads the padding mask on the host (transformers decides in
        # Python whether to skip it), which a full-graph step refuses; the eager path builds the
        # causal mask on the device. XLA lowers both to the same matmuls.
        return "eager"

    # -- distribution and execution
    def setup_distributed(self) -> None:
        """One process: SPMD needs no process group."""

    def wrap(self, model: Any, shapes: int = 1) -> Any:
        """Move to the device (re-tying shared weights), shard under FSDPv2, size the budget."""
        model = model.to(self.device)
        _retie(model)
        self.graphs = max(1, shapes) + WARMUP_GRAPHS
        if self.fsdp:
            model = self._fsdpv2(model)
        elif self.spmd:
            import torch_xla.distributed.spmd as xs

            for p in model.parameters():  # replicated: data parallel over the mesh
                xs.mark_sharding(p, self.mesh, (None,) * p.dim())
        return model

    def _fsdpv2(self, model: Any) -> Any:
        import torch_xla.distributed.spmd as xs
        from torch_xla.distributed.fsdp.wrap import transformer_auto_wrap_policy
        from torch_xla.experimental.spmd_fully_sharded_data_parallel import (
            SpmdFullyShardedDataParallel,
        )

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        names = set(getattr(base, "_no_split_modules", None) or ())
        blocks = {type(m) for m in base.modules() if type(m).__name__ in names}

        def shard_output(output: Any, mesh: Any) -> None:
            """The activations leave each block and the model sharded on the batch dimension
            (a Hugging Face output's logits; a block's hidden states, first of its tuple)."""
            first = getattr(output, "logits", None)
            if first is None:
                first = output[0] if isinstance(output, (tuple, list)) else output
            if hasattr(first, "dim"):
                xs.mark_sharding(first, mesh, ("fsdp",) + (None,) * (first.dim() - 1))

        policy = functools.partial(transformer_auto_wrap_policy,
                                   transformer_layer_cls=blocks) if blocks else None
        return SpmdFullyShardedDataParallel(model, mesh=self.mesh, shard_output=shard_output,
                                            auto_wrap_policy=policy)

    def no_sync(self, model: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def all_sum(self, value: Any) -> Any:
        return value

    def shard(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch  # the sharding is the input_sharding of the feed (SPMD)

    def barrier(self) -> None:
        import torch_xla.core.xla_model as xm

        xm.wait_device_ops()

    def close(self) -> None:
        self.barrier()

    def compile_step(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The whole step as one graph (Note [Graph budget]): a host read inside it raises."""
        import torch_xla

        return torch_xla.compile(fn, full_graph=True, name="specc_train_step",  # type: ignore[no-any-return]
                                 max_different_graphs=self.graphs)

    def zero(self) -> Any:
        """The loss window's start: one device tensor, uploaded once (never written in place)."""
        if getattr(self, "_zero", None) is None:
            import torch

            self._zero = torch.zeros(()).to(self.device)
        return self._zero

    def boundary(self) -> None:
        """Cut the graph between evaluation batches (one graph per batch shape)."""
        import torch_xla

        torch_xla.sync()

    # -- data feed
    def _sharding(self) -> Any:
        if not self.spmd:
            return None
        import torch_xla.distributed.spmd as xs

        return xs.ShardingSpec(self.mesh, ("fsdp", None))

    def feed(self, make: Callable[[int], dict[str, Any]], start: int) -> _Feed:
        return _Feed(make, start, self.device, self._sharding())

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch_xla.core.xla_model as xm

        return xm.send_cpu_data_to_device(batch, self.device, self._sharding())  # type: ignore[no-any-return]

    # -- host readback
    def read(self, value: Any) -> float:
        """A value on the host, read by a step closure at a step boundary: the loss window is
        the output of the last compiled step (already materialized), so this is one transfer
        and never a compilation."""
        import torch_xla
        import torch_xla.core.xla_model as xm

        box: list[float] = []
        xm.add_step_closure(lambda v: box.append(float(v.item())), args=(value,))
        torch_xla.sync()  # nothing pending to compile: it runs the closures
        return box[0]

    def host(self, state: Any) -> Any:
        """A state dict with every XLA tensor copied to the host (never save XLA tensors)."""
        import torch
        from torch.utils._pytree import tree_map

        return tree_map(lambda t: t.cpu() if isinstance(t, torch.Tensor) else t, state)

    def host_model(self, model: Any) -> Any:
        model = model.to("cpu")
        _retie(model)
        return model

    def oom_types(self) -> tuple[type[BaseException], ...]:
        import torch

        return (torch.OutOfMemoryError,)

    def memory(self) -> Iterator[float]:
        if self.pjrt == "TPU":
            import torch_xla.core.xla_model as xm

            yield xm.get_memory_info(self.device)["bytes_used"] / 2**20


def _compilation_cache() -> str | None:
    """The persistent compilation cache (brief section 1.6): graphs compiled by one process
    (a sweep's trial, a resumed run) are loaded, not recompiled, by the next one with the same
    shapes. SPECC_XLA_CACHE names the folder (default ~/.cache/specc/xla-graphs; empty: off).
    torch-xla reads the setting when its runtime starts, so this runs before torch_xla loads
    (what `xr.initialize_cache` does, without needing the runtime imported first). TPU only:
    PJRT CPU writes the cache but cannot load it back ("Deserializing serialized executable not
    supported", seen with torch-xla 2.9.0), so there it would only cost disk and warnings."""
    if os.environ.get("PJRT_DEVICE") != "TPU":
        return None
    path = os.environ.get("SPECC_XLA_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "specc", "xla-graphs"))
    if not path:
        return None
    if "torch_xla" not in sys.modules:
        os.makedirs(path, exist_ok=True)
        os.environ.setdefault("XLA_PERSISTENT_CACHE_PATH", path)
        os.environ.setdefault("XLA_PERSISTENT_CACHE_READ_ONLY", "0")
    return os.environ.get("XLA_PERSISTENT_CACHE_PATH")


def _retie(model: Any) -> None:
    """Moving a module to XLA unties shared parameters: tie them again (brief section 1.2)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        base.tie_weights()


class _Feed:
    """Batches by step through `MpDeviceLoader`: a background thread prepares them on the host
    and uploads them (sharded on the batch dimension under SPMD) while the device computes."""

    def __init__(self, make: Callable[[int], dict[str, Any]], start: int, device: Any,
                 sharding: Any) -> None:
        import torch.utils.data as tud
        import torch_xla.distributed.parallel_loader as pl

        class Steps(tud.IterableDataset):  # type: ignore[type-arg]
            def __iter__(self) -> Iterator[dict[str, Any]]:
                step = start
                while True:
                    yield make(step)
                    step += 1

        loader = tud.DataLoader(Steps(), batch_size=None, num_workers=0)
        self.loader = pl.MpDeviceLoader(loader, device, input_sharding=sharding,
                                        loader_prefetch_size=4, device_prefetch_size=2)
        self.it = iter(self.loader)
        self.next = start

    def get(self, step: int) -> dict[str, Any]:
        if step != self.next:
            msg = f"the XLA feed is at step {self.next}, not {step}"
            raise RuntimeError(msg)
        self.next += 1
        return next(self.it)  # type: ignore[no-any-return]

    def close(self) -> None:
        parallel = getattr(self.loader, "_parallel_loader", None)
        if parallel is not None:
            parallel.close()
