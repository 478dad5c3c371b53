"""The backend contract: what a backend declares it can do (``Capabilities``), the runtime
hooks the training loop calls (``Runtime``), and how backends are found (entry points).

Backends depend on this module only (and on ``specc.diagnostics`` for errors); the compiler
reads ``Capabilities`` from here, the runtime calls ``Runtime``'s hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import Any, Protocol

import attrs

from specc.diagnostics import SpeccError


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a backend can run. ``check_backend`` reports each gap at the spec line asking for it."""

    name: str
    precisions: tuple[str, ...] = attrs.field(converter=tuple)
    strategies: tuple[str, ...] = attrs.field(converter=tuple)
    attention: tuple[str, ...] = attrs.field(converter=tuple)
    shapes: tuple[str, ...] = attrs.field(converter=tuple)
    supports_compile: bool = True
    supports_peft: bool = True
    max_devices: int | None = None
    # Policies whose training reads device values on the host every step (AdaLoRA's rank
    # allocation): a static-graph backend cannot compile them into its step.
    policies_unsupported: tuple[str, ...] = attrs.field(converter=tuple, default=())
    # Static shapes: the backend pass fixes `train.shapes = auto` and forces drop_last.
    static_shapes: bool = False
    # Several devices in one process (SPMD): the global batch must divide over the devices.
    single_process_devices: bool = False


# Note [Built-in capabilities]: the torch-free records of the built-in backends; the backend
# packages hold the same records (a test keeps them equal) so `check` never imports torch.
BUILTIN: dict[str, Capabilities] = {
    "cpu": Capabilities(name="cpu", precisions=("auto", "fp32", "bf16"),
                        strategies=("auto", "single", "ddp", "fsdp"),
                        attention=("auto", "sdpa", "eager"),
                        shapes=("auto", "dynamic", "fixed", "buckets")),
    "cuda": Capabilities(name="cuda", precisions=("auto", "fp32", "bf16", "fp16"),
                         strategies=("auto", "single", "ddp", "fsdp"),
                         attention=("auto", "sdpa", "eager", "flash"),
                         shapes=("auto", "dynamic", "fixed", "buckets")),
    "xla": Capabilities(name="xla", precisions=("auto", "fp32", "bf16"),
                        strategies=("auto", "single", "ddp", "fsdp"),
                        attention=("auto", "sdpa", "eager"), shapes=("auto", "fixed", "buckets"),
                        supports_compile=False, policies_unsupported=("adalora",),
                        static_shapes=True, single_process_devices=True),
}
BUILTIN["auto"] = BUILTIN["cpu"]
AUTO_CHOICES = (BUILTIN["cpu"], BUILTIN["cuda"])  # what `backend = auto` may pick


class Runtime(Protocol):
    """The hooks the training loop (``specc.runtime.loop``) calls, and nothing else: a backend's
    runtime for one run. The step contract (ARCHITECTURE.md): the compiled step takes tensors
    and returns tensors; host reads go through ``read`` at log and evaluation boundaries."""

    device: Any
    is_main: bool
    world: int
    scaler: Any

    def setup_distributed(self) -> None: ...
    def describe(self) -> str: ...
    def seed(self, seed: int) -> None: ...
    def attention(self) -> str: ...
    def wrap(self, model: Any, shapes: int) -> Any: ...
    def compile_step(self, step: Callable[..., Any]) -> Callable[..., Any]: ...
    def feed(self, make: Callable[[int], dict[str, Any]], start: int) -> Any: ...
    def optimizer_kwargs(self, optimizer: dict[str, Any]) -> dict[str, Any]: ...
    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]: ...
    def shard(self, batch: dict[str, Any]) -> dict[str, Any]: ...
    def autocast(self) -> AbstractContextManager[Any]: ...
    def no_sync(self, model: Any, last: bool) -> AbstractContextManager[Any]: ...
    def zero(self) -> Any: ...
    def read(self, value: Any) -> float: ...
    def all_sum(self, value: Any) -> Any: ...
    def boundary(self) -> None: ...
    def barrier(self) -> None: ...
    def host(self, state: Any) -> Any: ...
    def host_model(self, model: Any) -> Any: ...
    def oom_types(self) -> tuple[type[BaseException], ...]: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """What the core needs from a backend: its name, what it can do, and its runtime parts."""

    name: str
    capabilities: Capabilities

    def available(self) -> bool: ...

    def runtime(self, train: dict[str, Any]) -> Runtime: ...


def load_backend(name: str) -> Backend:
    """The backend registered under ``name`` in the ``specc.backends`` entry-point group."""
    found = [ep for ep in entry_points(group="specc.backends") if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group="specc.backends"))
        msg = f'no backend "{name}" is installed (installed: {", ".join(known) or "none"})'
        raise SpeccError(msg)
    try:
        backend = found[0].load()
    except ImportError as exc:
        from specc import DISTRIBUTION

        extra = "xla" if name == "xla" else "torch"
        msg = (f"the {name} backend needs its dependencies: pip install "
               f"'{DISTRIBUTION}[{extra}]' ({exc})")
        raise SpeccError(msg) from exc
    return backend  # type: ignore[no-any-return]


def choose(name: str) -> str:
    """``auto`` is cuda when a GPU is visible, else cpu."""
    if name != "auto":
        return name
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class Prefetcher:
    """Prepares the next batches in a background thread while the current step runs.

    Batches are a pure function of the step, so prefetching never changes what a run sees.
    """

    def __init__(self, make: Callable[[int], dict[str, Any]], start: int, pin: bool,
                 depth: int = 2,
                 place: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        import queue
        import threading

        self.make, self.pin = make, pin
        self.place = place or (lambda batch: batch)
        self.queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
        self.next = start
        self.stopped = False
        self.thread = threading.Thread(target=self._work, args=(start,), daemon=True)
        self.thread.start()

    def _work(self, step: int) -> None:
        while not self.stopped:
            try:
                batch = self.make(step)
                if self.pin:
                    batch = {k: (v.pin_memory() if hasattr(v, "pin_memory") else v)
                             for k, v in batch.items()}
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
                batch = exc
            while not self.stopped:
                try:
                    self.queue.put((step, batch), timeout=0.1)
                    break
                except Exception:  # noqa: BLE001 - queue.Full: retry until stopped
                    continue
            step += 1

    def get(self, step: int) -> dict[str, Any]:
        got, batch = self.queue.get()
        if got != step:  # only if the loop skipped a step; never in practice
            return self.place(self.make(step))
        if isinstance(batch, BaseException):
            raise batch
        return self.place(batch)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)
