"""The verify stage's work: keep the downloaded counting samples whose image shows the
caption's count.

Between the counting download and λ. Layout of ``<data_root>/verify/<fingerprint>/``::

    decisions/<pass>-<shard>.parquet   one per input shard, written last for it: "shard done"
    shards/<pass>-<shard>.tar          that shard's kept samples, members copied byte for byte
    decisions.parquet                  every decision (:data:`DECISIONS_SCHEMA`)
    results.parquet                    the kept samples' download results (+ detected_count)
    manifest.json

Why it is built this way:

- **Resume.** The stage is resumable: it builds in place, and an input shard is decided when its
  decisions file exists. That file is written atomically *after* the shard's kept tar (also
  atomic), so a ``kill -9`` leaves every shard decided entirely or not at all; a rerun decides
  the rest, and ``decisions.parquet`` is assembled from the per-shard files at the end, so every
  sample is decided exactly once.
- **New shards, not a keep-list.** Training (``shards_of(manifest)``) and anything else that
  reads shards take the verified set unchanged. The copy costs disk (the counting set is a few
  percent of a build), never a decode.
- **``counter: none``** passes everything through (the naive filter): ``shards`` are the
  download's own tars, ``results`` its successes, every decision ``not_verified``. The flow,
  the outputs and the λ stage are the same either way.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from countclip import sql
from countclip.atomic import atomic_path
from countclip.config import VerifyConfig
from countclip.data.verify.build import build_counter
from countclip.data.verify.counters import (
    ObjectCounter,
    decide,
    dominant_count,
)
from countclip.progress import Progress, report_to

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
DECISIONS_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("shard", pa.string()),
        ("key", pa.string()),
        ("count", pa.int32()),
        ("detected_count", pa.int32()),
        ("kinds", pa.string()),
        ("kept", pa.bool_()),
        ("reason", pa.string()),
    ]
)
"""``shard``: the download shard holding the sample (``pass-0/00000.tar``, as in the download
results); ``count``: the caption's; ``detected_count``: objects of the most frequent kind
(null when not counted); ``kinds``: the counter's answer as JSON; ``reason``: match,
not_verified, count_mismatch, nothing_detected or undecodable."""

PathLike = str | os.PathLike[str]


def shard_label(tar: PathLike) -> str:
    """``pass-0/00000.tar`` for ``.../shards/pass-0/00000.tar`` (the download results' name)."""
    path = Path(tar)
    return f"{path.parent.name}/{path.name}"


def _file_name(tar: PathLike) -> str:
    return shard_label(tar).removesuffix(".tar").replace("/", "-")


def _sample_id(meta: Mapping[str, Any]) -> int | None:
    try:
        return int(meta["SAMPLE_ID"])
    except (KeyError, TypeError, ValueError):
        return None


def _decode(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError):
        return None


_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
"""webdataset's rule (``base_plus_ext``): the key runs to the first dot of the file name. Not
imported from webdataset, whose import pulls in torch (seconds) for one regular expression."""


def _samples(tar: tarfile.TarFile) -> list[tuple[str, dict[str, tarfile.TarInfo]]]:
    """Complete samples of a shard (an image and a json), in key order; img2dataset's failure
    leftovers (json only) are not samples."""
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    for info in tar:
        match = _MEMBER.match(info.name) if info.isfile() else None
        if match is not None:
            members.setdefault(match.group(1), {})[match.group(2).lower()] = info
    return [
        (key, parts)
        for key, parts in sorted(members.items())
        if "json" in parts and any(e in parts for e in IMAGE_EXTS)
    ]


def _member(data: bytes, info: tarfile.TarInfo) -> bytes:
    return data[info.offset_data : info.offset_data + info.size]


def _raw_member(data: bytes, info: tarfile.TarInfo) -> bytes:
    """A member exactly as the tar holds it: from its first header block (``offset``: any
    pax/GNU extended header included) to the end of its last data block."""
    blocks = -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return data[info.offset : info.offset_data + blocks]


def verify_shard(
    shard: PathLike,
    counter: ObjectCounter,
    kept_tar: PathLike,
    decisions_file: PathLike,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> pa.Table:
    """Decide every sample of one download shard: write its kept samples to ``kept_tar`` (only
    if any) and then its decisions to ``decisions_file``, each atomically. Returns the
    decisions.

    The shard is read into memory once (a few MB): members are sliced out of it by the offsets
    ``tarfile`` found, and the kept tar is those members' raw blocks, so nothing is re-encoded.
    """
    rows: list[dict[str, Any]] = []
    label = shard_label(shard)
    data = Path(shard).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        samples = _samples(tar)
    for start in range(0, len(samples), batch_size):
        batch = []
        for key, parts in samples[start : start + batch_size]:
            meta = json.loads(_member(data, parts["json"]))
            if "count" not in meta:
                raise ValueError(f"{shard}: sample {key}.json has no 'count' (not counting?)")
            image_ext = next(e for e in IMAGE_EXTS if e in parts)
            batch.append((key, meta, _decode(_member(data, parts[image_ext]))))
        counted = iter(counter.count([image for _, _, image in batch if image is not None]))
        for key, meta, image in batch:
            kinds = next(counted) if image is not None else None
            kept, reason = (
                (False, "undecodable") if kinds is None else decide(int(meta["count"]), kinds)
            )
            rows.append(
                {
                    "SAMPLE_ID": _sample_id(meta),
                    "shard": label,
                    "key": key,
                    "count": int(meta["count"]),
                    "detected_count": None if kinds is None else dominant_count(kinds),
                    "kinds": None if kinds is None else json.dumps(kinds, sort_keys=True),
                    "kept": kept,
                    "reason": reason,
                }
            )
        report_to(progress)(min(1.0, (start + len(batch)) / max(len(samples), 1)), label)
    kept = {row["key"] for row in rows if row["kept"]}
    if kept:
        members = sorted(
            (info for key, parts in samples if key in kept for info in parts.values()),
            key=lambda info: info.offset,
        )
        end = b"\0" * (2 * tarfile.BLOCKSIZE)  # the end-of-archive marker
        with atomic_path(kept_tar) as tmp:
            tmp.write_bytes(b"".join([*(_raw_member(data, m) for m in members), end]))
    decisions = pa.Table.from_pylist(rows, schema=DECISIONS_SCHEMA)
    with atomic_path(decisions_file) as tmp:
        pq.write_table(decisions, tmp)
    return decisions


def _verified_results(results: PathLike, decisions: PathLike, out: Path) -> None:
    con = duckdb.connect()
    try:
        table = con.sql(
            sql.load("verified_results.sql"),
            params={"results": str(results), "decisions": str(decisions)},
        ).to_arrow_table()
    finally:
        con.close()
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def _pass_through(results: Path, work: Path) -> pa.Table:
    """``counter: none``: every downloaded sample kept, undecided; writes ``results.parquet``
    and returns the decisions."""
    table = pq.read_table(results)
    table = table.filter(pc.equal(table.column("status"), "success"))
    names = table.column_names
    n = table.num_rows
    decisions = pa.table(
        {
            "SAMPLE_ID": table.column("SAMPLE_ID") if "SAMPLE_ID" in names else [None] * n,
            "shard": table.column("shard"),
            "key": table.column("key"),
            "count": table.column("count"),
            "detected_count": [None] * n,
            "kinds": [None] * n,
            "kept": [True] * n,
            "reason": ["not_verified"] * n,
        }
    ).cast(DECISIONS_SCHEMA)
    with atomic_path(work / "results.parquet") as tmp:
        pq.write_table(table.append_column("detected_count", decisions["detected_count"]), tmp)
    return decisions


def _stats(decisions: pa.Table, counter: str, seconds: float) -> dict[str, Any]:
    counts = decisions.column("count").to_pylist()
    kept = decisions.column("kept").to_pylist()
    reasons = decisions.column("reason").to_pylist()
    per_count: dict[str, dict[str, int]] = {}
    for count, keep in zip(counts, kept, strict=True):
        entry = per_count.setdefault(str(count), {"kept": 0, "dropped": 0})
        entry["kept" if keep else "dropped"] += 1
    return {
        "counter": counter,
        "samples": decisions.num_rows,
        "kept": sum(kept),
        "dropped": decisions.num_rows - sum(kept),
        "reasons": dict(sorted(Counter(reasons).items())),
        "per_count": dict(sorted(per_count.items(), key=lambda kv: int(kv[0]))),
        "images_per_s": round(decisions.num_rows / seconds, 1) if seconds > 0 else None,
    }


def verify_download(
    shards: Sequence[str],
    results: Path,
    cfg: VerifyConfig,
    work: Path,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Decide every sample of the download's ``shards`` (its ``results`` parquet beside them)
    into ``work``; return ``(outputs, stats)``: ``shards`` (the kept samples), ``results``
    (their download results, what λ reads) and ``decisions`` (one row per sample)."""
    report = report_to(progress)
    if not results.is_file():
        raise FileNotFoundError(f"{results}: the download's results parquet is gone")
    started = time.perf_counter()
    if cfg.counter == "none":
        kept_shards, decisions = shards, _pass_through(results, work)
    else:
        expected = _successes_per_shard(results)
        kept_shards, files = _decide_all(shards, cfg, work, report, expected)
        decisions = pa.concat_tables(
            [DECISIONS_SCHEMA.empty_table()]
            + [pq.read_table(f, schema=DECISIONS_SCHEMA) for f in files]
        )
    with atomic_path(work / "decisions.parquet") as tmp:
        pq.write_table(decisions, tmp)
    if cfg.counter != "none":
        _verified_results(results, work / "decisions.parquet", work / "results.parquet")
    outputs = {
        "shards": kept_shards,
        "results": work / "results.parquet",
        "decisions": work / "decisions.parquet",
    }
    return outputs, _stats(decisions, cfg.counter, time.perf_counter() - started)


class ShardDamaged(ValueError):
    """A download shard holds fewer samples than its download results say it does."""


def _successes_per_shard(results: Path) -> Counter[str]:
    table = pq.read_table(results, columns=["shard", "status"])
    return Counter(
        shard
        for shard, status in zip(
            table.column("shard").to_pylist(), table.column("status").to_pylist(), strict=True
        )
        if status == "success"
    )


def _decide_all(
    shards: Sequence[str],
    cfg: VerifyConfig,
    work: Path,
    report: Progress,
    expected: Mapping[str, int] | None = None,
) -> tuple[list[str], list[Path]]:
    """Decide every shard not decided yet (a rerun after a kill resumes here). A shard with
    fewer samples than its download results list is damaged: an error, never read short."""
    for leftover in [*work.glob("decisions/.*.tmp"), *work.glob("shards/.*.tmp")]:
        leftover.unlink()  # a killed writer's temp file; the lock says no one else writes
    counter: ObjectCounter | None = None
    kept, files = [], []
    for i, shard in enumerate(shards):
        name = _file_name(shard)
        done, kept_tar = work / "decisions" / f"{name}.parquet", work / "shards" / f"{name}.tar"
        if not done.exists():
            counter = counter or build_counter(cfg)
            step = 1.0 / len(shards)
            decided = verify_shard(
                shard,
                counter,
                kept_tar,
                done,
                cfg.batch_size,
                lambda f, m, i=i, step=step: report((i + f) * step * 0.98, f"verified {m}"),
            )
            want = (expected or {}).get(shard_label(shard))
            if want is not None and decided.num_rows != want:
                done.unlink(missing_ok=True)
                kept_tar.unlink(missing_ok=True)
                raise ShardDamaged(
                    f"{shard}: {decided.num_rows} samples readable, its download results list "
                    f"{want}: the shard is damaged (truncated?); rerun the build to download it "
                    "again"
                )
        files.append(done)
        if kept_tar.exists():
            kept.append(str(kept_tar))
    return kept, files
