"""Reading back what img2dataset wrote: failure classes, finished shards, and exactly one final
row per input sample across all passes (the layout is described in
:mod:`countclip.data.download.passes`).

Kept apart from running img2dataset because everything downstream (the λ stage's class counts,
evaluation's shard list, the download report) only reads: it must work on an output directory
whose writer was killed, without importing the runner.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from countclip.data.download.ledger import (  # the pass's ledger, re-exported here
    completed_shards,
    finished_shards,
)

STATE_NAME = "download.json"
ROW_COL = "countclip_row"
"""Additional column carried by retry passes: the sample's row index in the original input."""

ERROR_CLASSES: tuple[str, ...] = (
    "http_404",
    "http_4xx",
    "http_429",
    "http_5xx",
    "timeout",
    "connection",
    "truncated",
    "decode_error",
    "filtered",
    "opt_out",
    "shard_failed",
    "other",
)

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- classification

_HTTP = re.compile(r"HTTP Error (\d{3})")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"X-Robots-Tag", re.I), "opt_out"),
    (re.compile(r"timed out|timeout", re.I), "timeout"),
    (re.compile(r"IncompleteRead|truncated|incomplete", re.I), "truncated"),
    (
        re.compile(
            r"cannot identify image|not an image|decod|unrecognized|Unsupported image|"
            r"cannot decode|image file is",
            re.I,
        ),
        "decode_error",
    ),
    (re.compile(r"image too small|area too large|aspect ratio too large", re.I), "filtered"),
    (
        re.compile(
            r"refused|reset|Remote end closed|urlopen error|Connection|unreachable|"
            r"Name or service|EOF occurred|Broken pipe",
            re.I,
        ),
        "connection",
    ),
)


def classify_error(status: str | None, error_message: str | None) -> str | None:
    """Failure class of one img2dataset result (None for a success).

    Classes: http_404, http_4xx, http_429, http_5xx, timeout, connection, truncated,
    decode_error (failed_to_resize: not an image), filtered (size/aspect filters), opt_out,
    shard_failed (no finished shard holds the sample), other.
    """
    if status == "success":
        return None
    if status in (None, "missing"):
        return "shard_failed"
    message = error_message or ""
    if match := _HTTP.search(message):
        code = int(match.group(1))
        if code == 404:
            return "http_404"
        if code == 429:
            return "http_429"
        if code == 408:
            return "timeout"
        return "http_5xx" if code >= 500 else "http_4xx"
    for pattern, name in _RULES:
        if pattern.search(message):
            return name
    if status == "failed_to_resize":
        return "decode_error"
    return "other"


# --------------------------------------------------------------------------- shard bookkeeping


def forget_retryable(output_dir: Path, classes: Sequence[str]) -> int:
    """Delete every finished shard holding a failure of ``classes`` (transient ones), in every
    pass, so the next run downloads those URLs again; returns how many shards went. A download
    that ended below ``download.min_success`` does this before it fails: otherwise a rerun
    would find every shard done and fail the same way, with the network long back."""
    wanted, forgotten = set(classes), 0
    for _, pass_dir in pass_dirs(output_dir):
        for stats in finished_shards(pass_dir).values():
            stem = pass_dir / stats["shard"]
            table = pq.read_table(f"{stem}.parquet", columns=["status", "error_message"])
            found = _classify_column(
                table.column("status").to_pylist(), table.column("error_message").to_pylist()
            )
            if wanted & set(found):
                for suffix in ("_stats.json", ".tar", ".parquet"):
                    Path(f"{stem}{suffix}").unlink(missing_ok=True)
                forgotten += 1
    return forgotten


def pass_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in output_dir.glob("pass-*"):
        if p.is_dir() and p.name[5:].isdigit():
            found.append((int(p.name[5:]), p))
    return sorted(found)


def pass_record(
    pass_no: int,
    rows: int,
    done: Mapping[int, Mapping[str, Any]],
    expected: int,
    seconds: float | None = None,
) -> dict[str, Any]:
    """The state file's record of one download pass, from its completed shards' stats; without
    a measured wall time (a pass found finished on resume), the span of those stats."""
    ok = sum(s.get("successes", 0) for s in done.values())
    if seconds is None:
        starts = [s["start_time"] for s in done.values() if "start_time" in s]
        ends = [s["end_time"] for s in done.values() if "end_time" in s]
        seconds = max(ends) - min(starts) if starts and ends else 0.0
    return {
        "pass": pass_no,
        "rows": rows,
        "seconds": round(seconds, 3),
        "successes": ok,
        "shards": len(done),
        "expected_shards": expected,
        "skipped": False,
        "images_per_s": round(ok / seconds, 2) if seconds > 0 else None,
    }


def read_state(output_dir: Path) -> dict[str, Any]:
    path = output_dir / STATE_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a download_urls output directory (no {STATE_NAME})")
    return json.loads(path.read_text())


def shard_paths(output_dir: PathLike) -> list[str]:
    """Absolute paths of the finished .tar shards that hold at least one success (all passes,
    pass then shard order). Unfinished shards (a crash) are never listed."""
    output_dir = Path(output_dir)
    paths = []
    for _, pass_dir in pass_dirs(output_dir):
        for _sid, stats in sorted(completed_shards(pass_dir).items()):
            tar = pass_dir / f"{stats['shard']}.tar"
            if stats.get("successes", 0) > 0 and tar.exists():
                paths.append(str(tar.resolve()))
    return paths


# --------------------------------------------------------------------------- results


def _attempts(output_dir: Path, nps: int, upto_pass: int | None = None) -> pa.Table:
    """Every recorded attempt: row (input index), pass, key, status, error_message, shard."""
    oom = math.ceil(math.log10(nps)) if nps > 1 else 0
    parts = []
    for pass_no, pass_dir in pass_dirs(output_dir):
        if upto_pass is not None and pass_no >= upto_pass:
            continue
        for sid, stats in sorted(completed_shards(pass_dir).items()):
            parquet = pass_dir / f"{stats['shard']}.parquet"
            names = pq.read_schema(parquet).names
            cols = ["key", "status", "error_message"] + ([ROW_COL] if ROW_COL in names else [])
            t = pq.read_table(parquet, columns=cols)
            if ROW_COL in names:
                rows = t.column(ROW_COL).cast(pa.int64())
            else:  # pass 0 reads the input itself: key = shard * 10**oom + index in shard
                keys = [int(k) for k in t.column("key").to_pylist()]
                rows = pa.array([sid * nps + k % (10**oom) for k in keys], pa.int64())
            parts.append(
                pa.table(
                    {
                        "row": rows,
                        "pass": pa.array([pass_no] * t.num_rows, pa.int32()),
                        "key": t.column("key").cast(pa.string()),
                        "status": t.column("status").cast(pa.string()),
                        "error_message": t.column("error_message").cast(pa.string()),
                        "shard": pa.array([f"{pass_dir.name}/{stats['shard']}.tar"] * t.num_rows),
                    }
                )
            )
    if not parts:
        return pa.table(
            {
                "row": pa.array([], pa.int64()),
                "pass": pa.array([], pa.int32()),
                "key": pa.array([], pa.string()),
                "status": pa.array([], pa.string()),
                "error_message": pa.array([], pa.string()),
                "shard": pa.array([], pa.string()),
            }
        )
    return pa.concat_tables(parts)


def final_status(
    state: Mapping[str, Any], output_dir: Path, upto_pass: int | None = None
) -> pa.Table:
    """One row per input row: input columns + the last attempt (or status 'missing')."""
    inp = pq.read_table(state["input"], columns=state["read_columns"])
    rename = {state["url_col"]: "url"}
    if state.get("caption_col"):
        rename[state["caption_col"]] = "caption"
    inp = inp.rename_columns([rename.get(c, c) for c in inp.column_names])
    inp = inp.append_column("row", pa.array(range(inp.num_rows), pa.int64()))
    att = _attempts(output_dir, state["number_sample_per_shard"], upto_pass)
    extra = [c for c in inp.column_names if c not in ("row", "url", "caption")]
    select_extra = "".join(f', i."{c}"' for c in extra)
    caption = ", i.caption" if "caption" in inp.column_names else ""
    con = duckdb.connect()
    try:
        con.register("inp", inp)
        con.register("att", att)
        table = con.sql(f"""
            WITH last AS (
                SELECT * FROM att
                QUALIFY row_number() OVER (PARTITION BY row ORDER BY pass DESC) = 1)
            SELECT i.row, a.key, i.url{caption},
                   coalesce(a.status, 'missing') AS status,
                   CASE WHEN a.status IS NULL THEN 'no finished shard holds this sample'
                        ELSE a.error_message END AS error_message,
                   a.pass, CASE WHEN a.status = 'success' THEN a.shard END AS shard{select_extra}
            FROM inp i LEFT JOIN last a USING (row)
            ORDER BY i.row
        """).to_arrow_table()
    finally:
        con.close()
    classes = _classify_column(
        table.column("status").to_pylist(), table.column("error_message").to_pylist()
    )
    idx = table.column_names.index("error_message") + 1
    return table.add_column(idx, "error_class", pa.array(classes, pa.string()))


def _classify_column(statuses: Sequence[str | None], messages: Sequence[str | None]) -> list:
    cache: dict[tuple[str | None, str | None], str | None] = {}
    out = []
    for pair in zip(statuses, messages, strict=True):
        if pair not in cache:
            cache[pair] = classify_error(*pair)
        out.append(cache[pair])
    return out


def read_results(output_dir: PathLike) -> pa.Table:
    """One row per input sample, in input order, with its final status across passes.

    Columns: ``row`` (input row index), ``key`` (img2dataset key in the pass that holds the
    last attempt; the webdataset ``__key__`` of a success), ``url``, ``caption`` (when a
    caption column was given), ``status`` (success, failed_to_download, failed_to_resize, or
    missing), ``error_message``, ``error_class`` (see :func:`classify_error`), ``pass``,
    ``shard`` (successes only: the tar holding the image, relative to ``output_dir``), then
    the additional columns (retry passes add none to the table: ``countclip_row`` is internal,
    though it does appear in the json of samples a retry pass downloaded)."""
    output_dir = Path(output_dir)
    return final_status(read_state(output_dir), output_dir)


def summarise(table: pa.Table) -> tuple[int, dict[str, int]]:
    classes = Counter(c for c in table.column("error_class").to_pylist() if c is not None)
    successes = table.num_rows - sum(classes.values())
    return successes, dict(sorted(classes.items()))
