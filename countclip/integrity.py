"""What a finished output was when it was written, and whether it still is.

Every stage records each output file's size and SHA-256 in its manifest when it finishes (the
download stage also records each shard as it finishes, before the shard enters the pass's
ledger). A cache hit checks them: sizes always (a ``stat`` per file: a truncated shard or a
half-copied checkpoint is caught), SHA-256 too when ``COUNTCLIP_CHECK_OUTPUTS=checksum`` (the
weekly retrain's deployment sets it; ``--set`` cannot, it is about the disk, not the run). A
damaged output makes the stage incomplete: it is rebuilt (a download redoes only the damaged
shards), never read short.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHECK_ENV = "COUNTCLIP_CHECK_OUTPUTS"
"""``checksum``: a cache hit also re-hashes every output file; anything else checks sizes."""


def file_sum(path: str | os.PathLike[str]) -> list:
    """``[size, sha256]`` of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return [Path(path).stat().st_size, digest.hexdigest()]


def checksums_wanted() -> bool:
    return os.environ.get(CHECK_ENV, "").strip().lower() == "checksum"


def intact(path: str | os.PathLike[str], recorded: list | None) -> bool:
    """``path`` is still what was recorded when it was written: its size always, its SHA-256
    when :func:`checksums_wanted` (no record: nothing to compare, intact)."""
    if recorded is None:
        return True
    try:
        if Path(path).stat().st_size != recorded[0]:
            return False
    except OSError:
        return False
    return not checksums_wanted() or file_sum(path)[1] == recorded[1]


def files_of(paths: list[Path]) -> list[Path]:
    """The files ``paths`` name: files themselves, and every file under a directory."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
    return found
