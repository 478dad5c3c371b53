"""Reading a run's checkpoints, whole (``state.pt``) and sharded.

Sharded checkpoints: a run whose parameters are sharded (``strategy = fsdp``, FSDP2 on the
torch backend) writes its model, optimizer and weight averages with
``torch.distributed.checkpoint`` (DCP), every rank its own shards.

Note [Sharded checkpoints]: ``checkpoints/step-N/`` holds ``shards/`` (DCP's files: one per rank
plus ``.metadata``) beside ``state.pt``, which keeps only plain values (step, tokens, RNG) and
``"sharded": 1``; ``checksums.json`` covers every file. DCP records each tensor's global shape,
so a checkpoint written by 4 ranks loads into 2 (or into one process, or DDP, which hold whole
tensors): the world size is how a run is executed, not what it computes, so it is not part of
the run's hash (Note [Run hash]) and a requeued job may come back on fewer nodes. A whole-tensor
checkpoint (``state.pt`` with the model, written by one process or DDP) loads into a sharded run
too. DCP reads its metadata with pickle; specc reads it with an unpickler that accepts only
DCP's own metadata classes, so a tampered checkpoint cannot run code (the tensors themselves
are read with ``weights_only=True``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from specc.store.files import verify_checksums

SHARDS = "shards"
FORMAT = 1

# What DCP's metadata pickles, and nothing else is constructed: the plain record classes of
# its metadata module, its storage records, torch's dtypes and a few value types.
_METADATA_MODULE = "torch.distributed.checkpoint.metadata"
_METADATA_GLOBALS = {("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
                     ("torch", "Size"), ("torch.serialization", "_get_layout"),
                     ("torch", "strided"), ("torch", "contiguous_format"),
                     ("torch", "channels_last"), ("torch", "preserve_format"),
                     ("collections", "OrderedDict"), ("pathlib", "PosixPath"),
                     ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
                     ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice")}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        found = super().find_class(module, name) if (
            module in (_METADATA_MODULE, "torch") or (module, name) in _METADATA_GLOBALS) else None
        ok = (module, name) in _METADATA_GLOBALS or (
            module == _METADATA_MODULE and isinstance(found, type)
            and found.__module__ == module) or isinstance(found, torch.dtype)
        if not ok:
            raise pickle.UnpicklingError(f"the shard metadata names {module}.{name}, which is "
                                         "not part of a checkpoint")
        return found


def read_state(ckpt: Path) -> dict[str, Any]:
    """``state.pt`` of a checkpoint folder, once its checksums verify; ValueError (saying
    what) for a damaged or foreign one. Checkpoints written before checksums existed are still
    loaded; ``weights_only=True`` keeps even a tampered one from running code."""
    import torch

    if (ckpt / "checksums.json").exists():
        verify_checksums(ckpt)
    try:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            KeyError, TypeError) as exc:
        raise ValueError(f"state.pt does not load ({str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(state, dict) or "step" not in state or not (
            "sharded" in state or {"model", "optimizer"} <= state.keys()):
        raise ValueError("state.pt is not a specc checkpoint")
    return state


def read_metadata(folder: Path) -> Any:
    """DCP's metadata of ``folder``, unpickled through the allow-list; ValueError when it
    is missing, damaged or names anything else."""
    path = folder / ".metadata"
    try:
        with path.open("rb") as f:
            metadata = _MetadataUnpickler(f).load()
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder.name}/{path.name} does not load ({exc})") from exc
    from torch.distributed.checkpoint.metadata import Metadata

    if not isinstance(metadata, Metadata):
        raise ValueError(f"{folder.name}/{path.name} is not DCP metadata")
    return metadata


def _reader(folder: Path) -> Any:
    from torch.distributed.checkpoint import FileSystemReader

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            metadata = read_metadata(Path(self.path))
            if getattr(metadata, "storage_meta", None) is None:
                from torch.distributed.checkpoint.metadata import StorageMeta

                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(str(folder))


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def files(folder: Path) -> list[str]:
    """The files DCP wrote under ``folder``, relative to its parent (for checksums)."""
    return sorted(f"{folder.name}/{p.name}" for p in folder.iterdir() if p.is_file())


def save(folder: Path, model: Any, opt: Any, extra: dict[str, Any]) -> None:
    """Every rank writes its shards of the model, the optimizer and ``extra`` (tensors, nested
    in dicts) into ``folder``; a collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optimizer": osd, **extra},
             storage_writer=dcp.FileSystemWriter(str(folder)), no_dist=not _distributed())


def load(folder: Path, model: Any, opt: Any, extra: dict[str, Any]) -> None:
    """Load a sharded checkpoint into this run's model and optimizer (sharded or whole, any
    world size) and, in place, into ``extra``'s tensors; a collective. Raises ValueError for a
    damaged or foreign checkpoint."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    read_metadata(folder)  # checked before DCP reads it, so a bad one is one clear error
    msd, osd = get_state_dict(model, opt)
    state = {"model": msd, "optimizer": osd, **extra}
    try:
        dcp.load(state, storage_reader=_reader(folder), no_dist=not _distributed())
    except (CheckpointException, RuntimeError, KeyError) as exc:
        causes = getattr(exc, "failures", None) or {0: exc}
        first = "; ".join(str(getattr(c, "exc", c)).strip().splitlines()[-1][:200]
                          for c in list(causes.values())[:2] if str(c).strip())
        raise ValueError(f"its shards do not load into this run ({first})") from exc
    set_state_dict(model, opt, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])


def load_whole(model: Any, opt: Any, named: list[tuple[str, Any]], model_state: dict[str, Any],
               opt_state: dict[str, Any]) -> None:
    """A whole-tensor checkpoint (one process or DDP wrote it) into a sharded run: each rank
    keeps its shard of every tensor. ``opt_state`` is ``Optimizer.state_dict()``'s (parameters
    by index), re-keyed here by parameter name, the form torch's sharded loader takes."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    whole = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=whole)
    names = {id(p): n for n, p in named}
    order = [names[id(p)] for g in opt.param_groups for p in g["params"]]
    by_name = {
        "state": {order[int(i)]: s for i, s in opt_state["state"].items()},
        "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]}
                         for g in opt_state["param_groups"]],
    }
    set_optimizer_state_dict(model, opt, by_name, options=whole)


def reshard(model: Any) -> None:
    """Drop the gathered parameters FSDP2 keeps after a forward without backward (the root's,
    after an evaluation), so the next forward gathers the shards again: needed after the
    parameters are written in place (weight averages swapped in and out)."""
    import sys

    if "torch.distributed.fsdp" not in sys.modules:
        return
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def ewa_state(names: list[str], ewa: dict[float, list[Any]]) -> dict[str, Any]:
    """Weight averages as DCP state, {"ewa": {"0": {name: tensor}}} by decay order."""
    if not ewa:
        return {}
    return {"ewa": {str(i): dict(zip(names, ewa[d], strict=True))
                    for i, d in enumerate(sorted(ewa))}}


def place_like(value: Any, like: Any) -> Any:
    """A whole tensor laid out like ``like`` (this rank's shard when ``like`` is sharded)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(like, DTensor):
        return distribute_tensor(value.to(like.dtype), like.device_mesh, like.placements)
    return value.to(like.device, like.dtype)
