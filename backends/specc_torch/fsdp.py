"""FSDP2 on the torch backend (``strategy = fsdp``): ``fully_shard`` per transformer block, then
the root; parameters become DTensors sharded over a 1-D mesh of every process."""

from __future__ import annotations

from typing import Any


def blocks(model: Any) -> list[Any]:
    """The modules to shard one by one: a Hugging Face model's transformer blocks (its
    ``_no_split_modules`` classes), else the items of its outermost ``ModuleList``s (a user's
    own model); the root takes the rest (embeddings, head, final norm)."""
    import torch

    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    if names:
        return [m for m in model.modules() if type(m).__name__ in names and m is not model]
    found: list[Any] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, torch.nn.ModuleList):
            found.extend(module)
            inside.update(id(m) for item in module for m in item.modules())
    return found


def shard(model: Any, kind: str, world: int, precision: str) -> Any:
    """``model`` sharded in place over ``world`` processes. Under bf16/fp16 the parameters
    are gathered in that dtype for compute while the sharded master weights, the gradient
    reduction and the optimizer stay fp32 (``MixedPrecisionPolicy``)."""
    import warnings

    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # the loop never writes into a model's outputs in place, which is what this warns about
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(kind, (world,))
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    policy = MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32 if low else None)
    for block in blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def whole_state(model: Any) -> dict[str, Any]:
    """The model's state with every tensor whole, on the host of rank 0 (empty elsewhere); a
    collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))


def skeleton(model: Any) -> Any:
    """A copy of ``model`` whose parameters take no memory (meta tensors), buffers kept: what
    ``whole_state`` fills in to give an unsharded model for ``final/``."""
    import copy

    import torch

    params = {id(p): p for p in model.parameters()}
    memo = {pid: torch.nn.Parameter(torch.empty_like(p, device="meta"),
                                    requires_grad=p.requires_grad)
            for pid, p in params.items()}
    return copy.deepcopy(model, memo=dict(memo))


def filled(template: Any, state: dict[str, Any]) -> Any:
    """``template`` (a ``skeleton``) with the whole ``state`` assigned; tied weights re-tied."""
    missing, unexpected = template.load_state_dict(state, strict=False, assign=True)
    tie = getattr(template, "tie_weights", None)
    if tie is None and hasattr(template, "get_base_model"):
        tie = getattr(template.get_base_model(), "tie_weights", None)
    if tie is not None:
        tie()
    still = [n for n, p in template.named_parameters() if p.is_meta]
    if still or unexpected:
        raise RuntimeError(f"the gathered model state does not fit the model (missing "
                           f"{still[:5]}, unexpected {list(unexpected)[:5]})")
    del missing
    return template
