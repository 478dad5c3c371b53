"""Turn what a backend cannot do into located diagnostics, during check and plan."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from specc import diagnostics as dg
from specc.compiler import ir


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


# Note [Built-in capabilities]: the torch-free records of the built-in backends; the backend
# packages hold the same records (a test keeps them equal) so `check` never imports torch.
BUILTIN: dict[str, Capabilities] = {
    "cpu": Capabilities(name="cpu", precisions=("auto", "fp32", "bf16"),
                        strategies=("auto", "single", "ddp"), attention=("auto", "sdpa", "eager"),
                        shapes=("auto", "dynamic", "fixed", "buckets")),
    "cuda": Capabilities(name="cuda", precisions=("auto", "fp32", "bf16", "fp16"),
                         strategies=("auto", "single", "ddp", "fsdp"),
                         attention=("auto", "sdpa", "eager", "flash"),
                         shapes=("auto", "dynamic", "fixed", "buckets")),
    "xla": Capabilities(name="xla", precisions=("auto", "fp32", "bf16"),
                        strategies=("auto", "single", "ddp", "fsdp"),
                        attention=("auto", "sdpa", "eager"), shapes=("auto", "fixed", "buckets"),
                        supports_compile=False),
}
BUILTIN["auto"] = BUILTIN["cpu"]

_CHECKS: tuple[tuple[str, str, Callable[[Capabilities], tuple[str, ...]]], ...] = (
    ("train.precision", "use precision {value}", lambda c: c.precisions),
    ("train.strategy", "run strategy {value}", lambda c: c.strategies),
    ("train.attention", "use {value} attention", lambda c: c.attention),
    ("train.shapes", "run {value} shapes", lambda c: c.shapes),
)

_HELP = {
    ("xla", "train.shapes"): "XLA compiles one graph per shape: use shapes = fixed or buckets",
    ("xla", "train.attention"): "use attention = sdpa (flash kernels are CUDA-only)",
    ("xla", "train.strategy"): "on XLA, ddp and fsdp lower to SPMD meshes",
    ("cpu", "train.precision"): "fp16 autocast is CUDA-only; use bf16 or fp32 on the CPU",
    ("xla", "train.compile"): "XLA always compiles the step; remove `compile = true`",
}


def check_backend(program: ir.Program, backend: str | None, out: dg.Collector) -> ir.Program:
    """Report every field an experiment sets that its backend cannot run.

    Example:
        ``train { shapes = dynamic }`` with ``--backend xla`` reports
        ``the xla backend cannot run dynamic shapes  [backend-unsupported]`` at that line.
    """
    for exp in program.experiments:
        name = backend or _str(exp.field("backend")) or "auto"
        caps = capabilities(name)
        if caps is None:
            out.error("backend-unknown", exp.span, name=name,
                      help=dg.did_you_mean(name, BUILTIN) or "backends: cpu, cuda, xla, auto")
            continue
        fields = {f.path: f for f in exp.fields}
        for path, what, allowed in _CHECKS:
            f = fields.get(path)
            value = _str(f.value) if f else None
            if f is not None and value is not None and value not in allowed(caps):
                out.error("backend-unsupported", f.span, backend=caps.name,
                          what=what.format(value=value), help=_HELP.get((caps.name, path)))
        comp = fields.get("train.compile")
        if comp is not None and _str(comp.value) == "True" and not caps.supports_compile \
                and comp.origin.how != "default":
            out.error("backend-unsupported", comp.span, backend=caps.name,
                      what="use torch.compile", help=_HELP.get((caps.name, "train.compile")))
        devices = fields.get("train.devices")
        if (devices is not None and caps.max_devices is not None
                and isinstance(devices.value, ir.Const)
                and int(devices.value.value or 1) > caps.max_devices):  # type: ignore[arg-type]
            out.error("backend-unsupported", devices.span, backend=caps.name,
                      what=f"use more than {caps.max_devices} devices")
    return program


def capabilities(name: str) -> Capabilities | None:
    """Built-in records first, then any backend registered under ``specc.backends``."""
    if name in BUILTIN:
        return BUILTIN[name]
    from importlib.metadata import entry_points

    for ep in entry_points(group="specc.backends"):
        if ep.name == name:
            backend = ep.load()
            caps = getattr(backend, "capabilities", None)
            return caps if isinstance(caps, Capabilities) else None
    return None


def _str(v: ir.Value | None) -> str | None:
    return str(v.value) if isinstance(v, ir.Const) and v.value is not None else None
