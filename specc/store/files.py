"""Reading and writing files of the store safely: paths confined to their root, checksums,
a disk that fills up.

A run directory is data, not code (docs/security.md): every path read from it (a pointer, a
manifest, an index row) is resolved and must stay below the root it was read from.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def confined(root: Path, rel: str | Path) -> Path | None:
    """``root / rel`` when it resolves (symlinks followed) to a path below ``root``; else None.

    Example:
        >>> confined(Path("/tmp/run/checkpoints"), "../../../etc/passwd") is None
        True
    """
    base = Path(root).resolve()
    try:
        target = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None
    if target == base or base in target.parents:
        return target
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(folder: Path, names: list[str], meta: dict[str, Any]) -> None:
    """``checksums.json`` beside ``names``: their SHA-256 and sizes, plus ``meta``."""
    files = {n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size}
             for n in names}
    (folder / "checksums.json").write_text(json.dumps({**meta, "files": files}, indent=2))


def verify_checksums(folder: Path) -> dict[str, Any]:
    """The metadata of ``checksums.json`` once every file it lists matches; raises
    ``ValueError`` saying which file is damaged."""
    try:
        data = json.loads((folder / "checksums.json").read_text())
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"its checksums.json is missing or unreadable ({exc})") from exc
    for name, want in files.items():
        path = confined(folder, name)
        if path is None:
            raise ValueError(f"checksums.json names {name!r}, outside the checkpoint")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ValueError(f"{name} is missing ({exc.strerror})") from exc
        if size != want.get("bytes"):
            raise ValueError(f"{name} has {size} bytes, {want.get('bytes')} were written "
                             "(truncated?)")
        if sha256_file(path) != want.get("sha256"):
            raise ValueError(f"{name} does not match the checksum written with it")
    return data


class DiskFull(OSError):
    """No space left while writing ``path``; the message says how much was needed."""

    def __init__(self, path: Path, needed: int | None) -> None:
        try:
            free = shutil.disk_usage(path.parent if not path.is_dir() else path).free
        except OSError:
            free = None
        need = f"about {_size(needed)}" if needed else "more space"
        have = f"{_size(free)} free" if free is not None else "free space unknown"
        super().__init__(errno.ENOSPC, f"no space left on the device writing {path}: it needs "
                         f"{need} ({have}); free some space and run again (the run resumes "
                         "from its last checkpoint)")
        self.path = path


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def remove_entries(folder: Path, keep: set[str]) -> None:
    """Empty ``folder`` (a symlinked folder: its target) except the names in ``keep``; links
    inside are removed, never followed."""
    if not folder.exists():
        return
    for entry in os.scandir(folder):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
