"""Turn what a backend cannot do into located diagnostics, during check and plan."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from specc import diagnostics as dg
from specc.backend import AUTO_CHOICES, BUILTIN, Capabilities
from specc.compiler import ir
from specc.diagnostics import Span

_CHECKS: tuple[tuple[str, str, Callable[[Capabilities], tuple[str, ...]]], ...] = (
    ("train.precision", "use precision {value}", lambda c: c.precisions),
    ("train.strategy", "run strategy {value}", lambda c: c.strategies),
    ("train.attention", "use {value} attention", lambda c: c.attention),
    ("train.shapes", "run {value} shapes", lambda c: c.shapes),
)

_HELP = {
    ("xla", "train.shapes"): "XLA compiles one graph per shape: use shapes = fixed or buckets",
    ("xla", "train.attention"): "use attention = sdpa (flash kernels are CUDA-only)",
    ("cpu", "train.precision"): "fp16 autocast is CUDA-only; use bf16 or fp32 on the CPU",
    ("xla", "train.compile"): "XLA always compiles the step; remove `compile = true`",
}


def check_backend(program: ir.Program, backend: str | None, out: dg.Collector) -> ir.Program:
    """Report every field an experiment sets that its backend cannot run, then lower the
    backend's rules into the plan (Note [Shape policy]).

    Example:
        ``train { shapes = dynamic }`` with ``--backend xla`` reports
        ``the xla backend cannot run dynamic shapes  [backend-unsupported]`` at that line.
    """
    lowered = []
    for exp in program.experiments:
        name = backend or _str(exp.field("backend")) or "auto"
        caps = capabilities(name)
        if caps is None:
            out.error("backend-unknown", exp.span, name=name,
                      help=dg.did_you_mean(name, BUILTIN) or "backends: cpu, cuda, xla, auto")
            lowered.append(exp)
            continue
        # `auto` is decided on the machine that runs (cuda with a GPU, else cpu); `check` holds
        # the spec to both, so its verdict never depends on the machine that checks.
        found = dg.Collector()
        for each in AUTO_CHOICES if name == "auto" else (caps,):
            _check_experiment(exp, each, found)
        for d in sorted(found.items, key=lambda d: (d.span.line, d.span.col)):  # in file order
            out.add(d)
        lowered.append(_shape_policy(exp, caps))
    return attrs.evolve(program, experiments=tuple(lowered))


def _check_experiment(exp: ir.Experiment, caps: Capabilities, out: dg.Collector) -> None:
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
    nodes = fields.get("train.nodes")
    if (nodes is not None and caps.single_process_devices and (_int(nodes.value) or 1) > 1):
        out.error("backend-unsupported", nodes.span, backend=caps.name,
                  what="span several nodes (one process drives this backend's devices)")
    _check_spmd_batch(fields, caps, out)
    _check_policies(exp, caps, out)


def _check_spmd_batch(fields: dict[str, ir.Field], caps: Capabilities,
                      out: dg.Collector) -> None:
    """One process feeds every device a slice of the global batch: it must divide evenly."""
    devices, batch = fields.get("train.devices"), fields.get("train.batch")
    if not caps.single_process_devices or devices is None or batch is None:
        return
    n, b = _int(devices.value), _int(batch.value)
    if n is not None and b is not None and n > 1 and b % n:
        out.error("backend-unsupported", batch.span, backend=caps.name,
                  what=f"split a batch of {b} over {n} devices",
                  help=f"make train.batch a multiple of {n}, e.g. {b - b % n or n} or "
                       f"{b - b % n + n}")


def _check_policies(exp: ir.Experiment, caps: Capabilities, out: dg.Collector) -> None:
    """A policy the backend cannot compile, reported where the experiment chooses it."""
    if not caps.policies_unsupported:
        return
    chosen: list[tuple[ir.Value, Span]] = []
    for f in exp.fields:
        if f.path == "policy":
            chosen.append((f.value, f.span))
    for axis in exp.sweep.axes if exp.sweep else ():
        if axis.path == "policy" and not isinstance(axis.values, ir.ConstRange):
            chosen += [(v, axis.span) for v in axis.values]
    for value, span in chosen:
        decl = exp.decl(value.name) if isinstance(value, ir.Ref) else None
        comp = decl.value if decl is not None else value
        name = comp.name if isinstance(comp, ir.Comp) else None
        if name in caps.policies_unsupported:
            where = decl.span if decl is not None and span.line == 0 else span
            out.error("backend-unsupported", where, backend=caps.name, what=f"train {name}",
                      help=f"{name} reads scores on the host every step, which a compiled "
                           "static graph cannot do; use lora or circuit_lora")


# Note [Shape policy]: a static-shape backend (XLA) compiles one graph per input shape, so the
# plan fixes the shapes before anything runs: `shapes = auto` becomes `fixed` (every batch
# padded to the longest sequence of the data), `buckets` pads to the smallest listed length that
# fits, and `drop_last` is forced (an epoch budget never ends on a ragged batch). The runtime
# sizes its graph budget from the same fields (backends/specc_xla), so a shape the policy did
# not foresee is an error, not a silent recompilation.
def _shape_policy(exp: ir.Experiment, caps: Capabilities) -> ir.Experiment:
    if not caps.static_shapes:
        return exp
    why = ir.Origin(how="backend", detail=f"{caps.name} needs static shapes")
    fields = []
    for f in exp.fields:
        if f.path == "train.shapes" and _str(f.value) == "auto":
            f = attrs.evolve(f, value=ir.Const(value="fixed"), origin=why)
        elif f.path == "train.drop_last" and _str(f.value) != "True":
            f = attrs.evolve(f, value=ir.Const(value=True), origin=why)
        fields.append(f)
    return attrs.evolve(exp, fields=tuple(fields))


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


def _int(v: ir.Value | None) -> int | None:
    if isinstance(v, ir.Const) and isinstance(v.value, int) and not isinstance(v.value, bool):
        return v.value
    return None


def _str(v: ir.Value | None) -> str | None:
    return str(v.value) if isinstance(v, ir.Const) and v.value is not None else None
