"""Nothing half-written: every file a stage writes goes to a temp path beside its target and is
renamed into place only when complete, so a crash leaves either the old file or the new one.

A full disk is the one write error no retry can fix, so it is raised as :class:`DiskFullError`,
naming the path and the free space, and the orchestration layer never retries it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from countclip.fingerprints import canonical

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(OSError):
    """No space left (or quota exceeded) under a path; the message says how much is free."""


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e6:.1f} MB"


def disk_full(
    path: str | os.PathLike[str], cause: BaseException | None = None, needed: int | None = None
) -> DiskFullError:
    """A :class:`DiskFullError` for ``path`` with the free space now (and ``needed``, if known)."""
    need = f"; needs about {_mb(needed)} more" if needed else ""
    detail = f" ({cause})" if cause else ""
    return DiskFullError(
        errno.ENOSPC,
        f"{path}: no space left on device{detail}: {_mb(free_bytes(path))} free{need}. "
        "Free space or point data_root elsewhere, then rerun: finished work is kept",
    )


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT anywhere in ``exc``'s cause chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError) or (
            isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temp file next to ``path``, fsync it and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(path, exc, len(data)) from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(canonical(obj), indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that needs a filename (DuckDB COPY,
    pyarrow, matplotlib); rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it replaces ``path`` whole.

    Replacing an existing directory is not atomic on POSIX (remove, then rename): callers that
    may race hold the stage lock (:mod:`countclip.stages.base`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
