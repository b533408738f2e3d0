"""Which shards of a pass count as done: finished by img2dataset, seen finished by a living
parent (the pass's ledger), and still as they were written (each tar's size and SHA-256,
recorded when it finished).

Layout beside a pass folder ``pass-<i>/``: ``pass-<i>.ledger.json`` (shard id -> img2dataset's
end time) and ``pass-<i>.sums.json`` (shard id -> ``[size, sha256]`` of its tar). Both live
beside, not in, the pass folder: img2dataset takes every ``*.json`` inside it for a finished
shard's stats.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from countclip.atomic import atomic_write_json
from countclip.integrity import intact

LEDGER_SUFFIX = ".ledger.json"


def _shard_id(path: Path) -> int:
    return int(path.name.split("_")[0].split(".")[0])


def shard_finished(stats_file: Path) -> dict[str, Any] | None:
    """The stats of a shard img2dataset finished (stats file and parquet both readable; it
    writes the stats file last), with ``shard`` = its file stem; None if it is unfinished."""
    try:
        stats = json.loads(stats_file.read_text())
        parquet = stats_file.with_name(stats_file.name.replace("_stats.json", ".parquet"))
        pq.read_metadata(parquet)
    except Exception:  # a crash mid-write: not finished
        return None
    stats["shard"] = stats_file.name.replace("_stats.json", "")
    return stats


def finished_shards(pass_dir: Path) -> dict[int, dict[str, Any]]:
    """shard id -> stats for every shard that *looks* finished, whoever wrote it."""
    done: dict[int, dict[str, Any]] = {}
    if not pass_dir.is_dir():
        return done
    for stats_file in sorted(pass_dir.glob("*_stats.json")):
        if (stats := shard_finished(stats_file)) is not None:
            done[_shard_id(stats_file)] = stats
    return done


def ledger_path(pass_dir: Path) -> Path:
    """``pass-<i>.ledger.json`` beside (not in) the pass folder: img2dataset takes every
    ``*.json`` inside it for a finished shard's stats."""
    return pass_dir.with_name(pass_dir.name + LEDGER_SUFFIX)


def ledger_key(stats: Mapping[str, Any]) -> float | None:
    """What the ledger remembers of a shard: img2dataset's end time, so a shard redone after
    the one the ledger saw (deleted by hand, rewritten by an orphan) is not mistaken for it."""
    end = stats.get("end_time")
    return float(end) if isinstance(end, int | float) else None


def read_ledger(pass_dir: Path) -> dict[int, float | None]:
    """shard id -> :func:`ledger_key` of the shards a living parent saw finished. No ledger (or
    an unreadable one: it is written atomically, so only a foreign edit) trusts nothing."""
    try:
        raw = json.loads(ledger_path(pass_dir).read_text())
        return {int(sid): key for sid, key in raw["shards"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_ledger(pass_dir: Path, shards: Mapping[int, float | None]) -> None:
    atomic_write_json(
        ledger_path(pass_dir), {"shards": {str(sid): key for sid, key in sorted(shards.items())}}
    )


SUMS_SUFFIX = ".sums.json"


def sums_path(pass_dir: Path) -> Path:
    """``pass-<i>.sums.json``: each ledgered shard's tar size and SHA-256, as written."""
    return pass_dir.with_name(pass_dir.name + SUMS_SUFFIX)


def read_sums(pass_dir: Path) -> dict[int, list]:
    try:
        raw = json.loads(sums_path(pass_dir).read_text())
        return {int(sid): value for sid, value in raw.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def completed_shards(pass_dir: Path) -> dict[int, dict[str, Any]]:
    """shard id -> stats for the shards that count: finished, in the pass's ledger, and with
    their tar as it was written (size, and checksum when asked: a truncated shard is redone,
    never read short).

    The download runner adds a shard to the ledger when it sees it finished while it (the
    parent) is alive. img2dataset's workers can finish shards after their parent died (with
    connection errors: the image server died with it); those are not in the ledger, so they
    never count, and :func:`repair_pass` deletes them before a rerun.
    """
    trusted = read_ledger(pass_dir)
    sums = read_sums(pass_dir)
    return {
        sid: stats
        for sid, stats in finished_shards(pass_dir).items()
        if sid in trusted
        and trusted[sid] == ledger_key(stats)
        and intact(pass_dir / f"{stats['shard']}.tar", sums.get(sid))
    }


def repair_pass(pass_dir: Path) -> list[str]:
    """Delete the shards a rerun must redo (returns their stems): a stats file cut by a crash
    (img2dataset's incremental mode would otherwise treat it as done forever) and finished
    shards that are not in the ledger (written after the parent died)."""
    if not pass_dir.is_dir():
        return []
    good = completed_shards(pass_dir)
    deleted = []
    for stats_file in sorted(pass_dir.glob("*_stats.json")):
        if _shard_id(stats_file) in good:
            continue
        stem = stats_file.name.replace("_stats.json", "")
        for suffix in ("_stats.json", ".tar", ".parquet"):
            with contextlib.suppress(FileNotFoundError):
                (pass_dir / f"{stem}{suffix}").unlink()
        deleted.append(stem)
    return deleted
