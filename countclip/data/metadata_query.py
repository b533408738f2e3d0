"""LAION metadata -> counting candidates and a common (non-counting) sample.

All the data work happens in DuckDB with the queries kept in ``sql/*.sql`` and every value bound
as a parameter. Results are streamed to parquet with ``COPY (query) TO $out``: the table never
enters Python, so memory stays bounded by DuckDB's ``memory_limit`` whatever the source size.
The number-word regex here is only a cheap prefilter; :mod:`countclip.data.captions.parser` decides.

Every query reads ``laion_rows(files)`` (``sql/laion_source.sql``): the source under LAION-400M's
column names (``metadata.columns`` maps others, e.g. Re-LAION's), each row with the exclusion
lists (``metadata.exclude``) its URL is on; excluded rows are dropped before any other filter,
so nothing on a blocklist reaches the download. Remote files are read through fsspec
filesystems registered on the connection (:mod:`countclip.data.remote_parquet`): DuckDB never
downloads an extension.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb

from countclip import sql
from countclip.config import MetadataConfig
from countclip.data import remote_parquet as rmt
from countclip.data.remote_parquet import RemoteFiles, RemoteSourceError, is_remote
from countclip.data.source import (
    LAION_COLUMNS,
    LAION_SCHEMA,
    MetadataError,
    MetadataSourceNotFound,
    check_source,
    column_map,
    describe,
    exclude_lists,
    first_line,
    load_exclusions,
    remote_files,
    source_files,
    source_identity,
)
from countclip.progress import Progress, report_to

__all__ = [  # the stage's API, with what it re-exports from countclip.data.source
    "LAION_COLUMNS",
    "LAION_SCHEMA",
    "MetadataError",
    "MetadataSourceNotFound",
    "RemoteSourceError",
    "check_source",
    "column_map",
    "connect",
    "describe",
    "exclude_lists",
    "is_remote",
    "load_exclusions",
    "load_sql",
    "number_pattern",
    "remote_files",
    "select_rows",
    "source_files",
    "source_identity",
]

STAGED_SOURCE = "remote-source.parquet"
"""Local copy of a remote source's LAION columns, in the work directory while the stage runs."""


load_sql = sql.load
"""Text of a query in ``sql/`` (see :mod:`countclip.sql`)."""


def number_pattern(words: list[str], include_digits: bool = False) -> str:
    """RE2 pattern matching any number word (or digit 2..10) as a whole word."""
    alts = [re.escape(w) for w in words]
    if include_digits:
        alts += ["10", "[2-9]"]
    return r"\b(" + "|".join(alts) + r")\b"


def connect(cfg: MetadataConfig, remote: RemoteFiles | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the stage's thread/memory limits, ``remote``'s filesystems, the
    LAION filter macros (``sql/laion_filters.sql``) and ``laion_rows`` (``sql/laion_source.sql``).
    Extensions are never installed: a remote path no registered filesystem serves fails at once
    instead of waiting for a download."""
    con = duckdb.connect(
        config={
            "threads": cfg.threads,
            "memory_limit": cfg.memory_limit,
            "autoinstall_known_extensions": False,
        }
    )
    if remote is not None:
        remote.register(con)
    con.execute(load_sql("laion_filters.sql"))
    con.execute("SET VARIABLE laion_columns = $columns", {"columns": column_map(cfg)})
    hashes = sorted({e.hash for e in exclude_lists(cfg)})
    con.execute("SET VARIABLE laion_hashes = $hashes", {"hashes": hashes})
    con.execute(load_sql("laion_source.sql"))
    if not cfg.exclude:
        con.execute(load_sql("laion_rows_unfiltered.sql"))
    return con


def _filter_params(cfg: MetadataConfig, files: list[str]) -> dict:
    return {
        "source": files,
        "allowed_nsfw": None if cfg.allowed_nsfw is None else list(cfg.allowed_nsfw),
        "min_similarity": float(cfg.min_similarity),
        "min_width": int(cfg.min_width),
        "min_height": int(cfg.min_height),
        "pattern": number_pattern(cfg.number_words, cfg.include_digits),
    }


def _copy(con: duckdb.DuckDBPyConnection, sql_name: str, params: dict, out: Path) -> int:
    query = load_sql(sql_name).strip().rstrip(";")
    rows = con.execute(f"COPY ({query}) TO $out (FORMAT parquet)", {**params, "out": str(out)})
    return int(rows.fetchall()[0][0])


def _read_error(cfg: MetadataConfig, remote: RemoteFiles | None, exc: duckdb.Error) -> Exception:
    """The error to raise for a failed query: a remote read failure recorded with its URL
    (transient ones retried by the task), else one line naming the source."""
    failure = remote.failure() if remote is not None else None
    if isinstance(failure, rmt.RemoteNotFound):
        return MetadataSourceNotFound(str(failure))
    if isinstance(failure, rmt.RemoteAccessDenied | ValueError):
        return MetadataError(str(failure))
    if failure is not None:
        return failure
    if is_remote(cfg.source):
        return RemoteSourceError(f"reading {describe(cfg.source)} failed: {first_line(exc)}")
    return MetadataError(f"{describe(cfg.source)}: query failed: {first_line(exc)}")


def _copy_remote(con: duckdb.DuckDBPyConnection, files: list[str], out: Path) -> Path:
    """Copy the mapped LAION columns of ``files`` to ``out`` (sql/stage_source.sql), and point
    ``laion_rows`` at them: the remote bytes the stage needs cross the network once, instead
    of once per scan (three)."""
    _copy(con, "stage_source.sql", {"source": files}, out)
    con.execute("SET VARIABLE laion_columns = $columns", {"columns": {c: c for c in LAION_COLUMNS}})
    return out


def select_rows(
    cfg: MetadataConfig, work: Path, progress: Progress | None = None
) -> tuple[dict, dict]:
    """Write ``candidates.parquet`` and ``common.parquet`` (the LAION columns) into ``work``;
    return ``(outputs, stats)``.

    ``stats`` satisfy ``rows_read == kept + sum(dropped.values())`` where ``kept`` is the number
    of candidates and ``dropped`` counts, in filter order, the rows each filter removed (rows on
    an exclusion list under ``excluded``, rows with no number word under ``no_number``; the
    common sample is drawn from those). ``excluded_by_list`` counts the source rows on each
    list.
    """
    report = report_to(progress)
    remote = remote_files(cfg)
    files = source_files(cfg, remote)
    report(0.02, f"checking {len(files)} file(s)")
    con = connect(cfg, remote)
    try:
        check_source(con, files, column_map(cfg))
        load_exclusions(con, cfg)
        scanned = files
        if any(is_remote(f) for f in files):
            report(0.04, f"copying the LAION columns of {len(files)} remote file(s)")
            scanned = [str(_copy_remote(con, files, work / STAGED_SOURCE))]
        report(0.05, f"counting {len(files)} file(s)")
        params = _filter_params(cfg, scanned)
        stats = _filter_stats(con, cfg, params)
        n_common = min(math.ceil(cfg.common_ratio * stats["candidates"]), stats["no_number"])
        # Oversample a little so the hash prefilter almost surely yields n rows; LIMIT trims.
        margin = n_common + 5 * math.sqrt(n_common) + 16
        fraction = min(1.0, margin / max(stats["no_number"], 1))
        report(0.3, "writing candidates")
        kept = _copy(con, "candidates.sql", params, work / "candidates.parquet")
        report(0.65, "sampling common rows")
        common = _copy(
            con,
            "common_sample.sql",
            {**params, "seed": int(cfg.seed), "fraction": fraction, "n": int(n_common)},
            work / "common.parquet",
        )
    except duckdb.Error as exc:
        raise _read_error(cfg, remote, exc) from exc
    finally:
        con.close()
    (work / STAGED_SOURCE).unlink(missing_ok=True)
    if kept != stats["candidates"]:  # the source changed under us
        raise MetadataError(
            f"{describe(cfg.source)}: {kept} candidates written but {stats['candidates']} counted"
        )
    per_list = stats.pop("excluded_per_list") or {}
    dropped = {
        "excluded": stats["dropped_excluded"],
        "url": stats["dropped_url"],
        "nsfw": stats["dropped_nsfw"],
        "similarity": stats["dropped_similarity"],
        "size": stats["dropped_size"],
        "empty_text": stats["dropped_empty_text"],
        "no_number": stats["no_number"],
    }
    report(0.95, f"{kept} candidates, {common} common rows")
    outputs = {"candidates": work / "candidates.parquet", "common": work / "common.parquet"}
    return outputs, {
        "source_files": len(files),
        "rows_read": stats["rows_read"],
        "kept": kept,
        "dropped": dropped,
        "excluded_by_list": {
            e.path: int(per_list.get(i, 0)) for i, e in enumerate(exclude_lists(cfg))
        },
        "common_rows": common,
        "common_requested": n_common,
    }


def _filter_stats(con: duckdb.DuckDBPyConnection, cfg: MetadataConfig, params: dict) -> dict:
    """Rows read and dropped per filter (sql/filter_stats.sql); a clear error when the source
    holds no rows or no candidate."""
    cur = con.execute(load_sql("filter_stats.sql"), params)
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchall()[0], strict=True))
    per_list = row.pop("excluded_per_list")
    stats: dict = {n: int(v or 0) for n, v in row.items()}
    stats["excluded_per_list"] = per_list
    source = describe(cfg.source)
    if stats["rows_read"] == 0:
        raise MetadataError(f"{source}: the parquet file(s) hold no rows")
    if stats["candidates"] == 0:
        raise MetadataError(
            f"{source}: no row passes the filters with a number word in TEXT "
            f"(rows read {stats['rows_read']}); check the source and thresholds"
        )
    return stats
