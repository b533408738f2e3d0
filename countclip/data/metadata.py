"""Stage 1: LAION-400M metadata -> counting candidates and a common (non-counting) sample.

All the data work happens in DuckDB with the queries kept in ``sql/*.sql`` and every value bound
as a parameter. Results are streamed to parquet with ``COPY (query) TO $out``: the table never
enters Python, so memory stays bounded by DuckDB's ``memory_limit`` whatever the source size.
The number-word regex here is only a cheap prefilter; :mod:`countclip.data.captions.parser` decides.
"""

from __future__ import annotations

import glob
import math
import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from countclip import sql
from countclip.config import MetadataConfig
from countclip.stage import Progress, Stage, StageOutput, StagePlan, report_to

METADATA = Stage("metadata", __name__)
# The LAION-400M metadata schema: the one definition the stage checks sources against and the
# synthetic world writes.
LAION_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("HEIGHT", pa.int32()),
        ("WIDTH", pa.int32()),
        ("LICENSE", pa.string()),
        ("NSFW", pa.string()),
        ("similarity", pa.float64()),
    ]
)
LAION_COLUMNS: tuple[str, ...] = tuple(LAION_SCHEMA.names)
REMOTE_PREFIXES = (
    "http://",
    "https://",
    "s3://",
    "s3a://",
    "gs://",
    "gcs://",
    "hf://",
    "r2://",
    "az://",
    "abfss://",
)



class MetadataError(ValueError):
    """Bad stage-1 input: unreadable source, missing LAION columns, or nothing selected."""


class MetadataSourceNotFound(MetadataError, FileNotFoundError):
    """The source glob/file matches no file."""


load_sql = sql.load
"""Text of a query in ``sql/`` (see :mod:`countclip.sql`)."""


def number_pattern(words: list[str], include_digits: bool = False) -> str:
    """RE2 pattern matching any number word (or digit 2..10) as a whole word."""
    alts = [re.escape(w) for w in words]
    if include_digits:
        alts += ["10", "[2-9]"]
    return r"\b(" + "|".join(alts) + r")\b"


def is_remote(source: str) -> bool:
    return source.lower().startswith(REMOTE_PREFIXES)


def connect(cfg: MetadataConfig, source: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the stage's thread/memory limits and the LAION filter macros
    (``sql/laion_filters.sql``); httpfs only for remote data."""
    con = duckdb.connect(config={"threads": cfg.threads, "memory_limit": cfg.memory_limit})
    if is_remote(source):
        try:
            con.execute("LOAD httpfs")
        except duckdb.Error:
            con.execute("INSTALL httpfs")
            con.execute("LOAD httpfs")
    con.execute(load_sql("laion_filters.sql"))
    return con


def _filter_params(cfg: MetadataConfig) -> dict:
    return {
        "source": cfg.source,
        "allowed_nsfw": list(cfg.allowed_nsfw),
        "min_similarity": float(cfg.min_similarity),
        "min_width": int(cfg.min_width),
        "min_height": int(cfg.min_height),
        "pattern": number_pattern(cfg.number_words, cfg.include_digits),
    }


def check_source(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """Files the source matches; raise :class:`MetadataError` naming a file and its missing
    LAION column(s), or :class:`MetadataSourceNotFound` when nothing matches."""
    if not source:
        raise MetadataError("metadata.source is empty: give a parquet file, glob or URL")
    try:
        rows = con.execute(load_sql("source_columns.sql"), {"source": source}).fetchall()
    except duckdb.IOException as exc:
        if "No files found" in str(exc) or "No such file" in str(exc):
            raise MetadataSourceNotFound(f"no parquet file matches {source!r}: {exc}") from exc
        raise MetadataError(f"cannot read parquet {source!r}: {exc}") from exc
    except duckdb.Error as exc:
        raise MetadataError(f"cannot read parquet {source!r}: {exc}") from exc
    if not rows:
        raise MetadataSourceNotFound(f"no parquet file matches {source!r}")
    for file_name, columns in rows:
        missing = [c for c in LAION_COLUMNS if c not in set(columns)]
        if missing:
            raise MetadataError(
                f"{file_name}: missing LAION column(s) {', '.join(missing)} "
                f"(expected {', '.join(LAION_COLUMNS)})"
            )
    return [r[0] for r in rows]


def source_identity(source: str) -> list:
    """Cheap identity of the input, known before the stage runs: path, size and mtime of each
    local file (hashing a 1 GB LAION part would cost more than the stage), or the URL itself
    for remote data."""
    if is_remote(source):
        return [source]
    parts: list = []
    for name in sorted(glob.glob(os.path.expanduser(source))) or [source]:
        try:
            st = os.stat(name)
            parts.append((os.path.abspath(name), st.st_size, st.st_mtime_ns))
        except OSError:
            parts.append((name,))
    return parts


def _copy(con: duckdb.DuckDBPyConnection, sql_name: str, params: dict, out: Path) -> int:
    query = load_sql(sql_name).strip().rstrip(";")
    rows = con.execute(f"COPY ({query}) TO $out (FORMAT parquet)", {**params, "out": str(out)})
    return int(rows.fetchall()[0][0])


def plan_metadata_stage(cfg: MetadataConfig, data_root: str) -> StagePlan:
    return METADATA.plan(data_root, config=cfg, identity=source_identity(cfg.source))


def run_metadata_stage(
    cfg: MetadataConfig, data_root: str, progress: Progress | None = None
) -> dict:
    """Select counting candidates and a seeded common sample from LAION metadata parquet.

    Outputs ``candidates.parquet`` and ``common.parquet`` (the LAION columns). The manifest's
    stats satisfy ``rows_read == kept + sum(dropped.values())`` where ``kept`` is the number of
    candidates and ``dropped`` counts, in filter order, the rows each filter removed (rows with
    no number word under ``no_number``; the common sample is drawn from those).
    """
    report = report_to(progress)

    def build(work: Path) -> StageOutput:
        con = connect(cfg, cfg.source)
        try:
            files = check_source(con, cfg.source)
            report(0.05, f"counting {len(files)} file(s)")
            params = _filter_params(cfg)
            stats = _filter_stats(con, cfg.source, params)
            n_common = min(math.ceil(cfg.common_ratio * stats["candidates"]), stats["no_number"])
            # Oversample a little so the hash prefilter almost surely yields n rows; LIMIT trims.
            margin = n_common + 5 * math.sqrt(n_common) + 16
            fraction = min(1.0, margin / max(stats["no_number"], 1))
            report(0.3, "writing candidates")
            try:
                kept = _copy(con, "candidates.sql", params, work / "candidates.parquet")
                report(0.65, "sampling common rows")
                common = _copy(
                    con,
                    "common_sample.sql",
                    {**params, "seed": int(cfg.seed), "fraction": fraction, "n": int(n_common)},
                    work / "common.parquet",
                )
            except duckdb.Error as exc:
                raise MetadataError(f"{cfg.source}: query failed: {exc}") from exc
        finally:
            con.close()
        if kept != stats["candidates"]:  # the source changed under us
            raise MetadataError(
                f"{cfg.source}: {kept} candidates written but {stats['candidates']} counted"
            )
        dropped = {
            "url": stats["dropped_url"],
            "nsfw": stats["dropped_nsfw"],
            "similarity": stats["dropped_similarity"],
            "size": stats["dropped_size"],
            "empty_text": stats["dropped_empty_text"],
            "no_number": stats["no_number"],
        }
        report(0.95, f"{kept} candidates, {common} common rows")
        return StageOutput(
            outputs={
                "candidates": work / "candidates.parquet",
                "common": work / "common.parquet",
            },
            stats={
                "source_files": len(files),
                "rows_read": stats["rows_read"],
                "kept": kept,
                "dropped": dropped,
                "common_rows": common,
                "common_requested": n_common,
            },
        )

    return plan_metadata_stage(cfg, data_root).run(build, progress)


def _filter_stats(con: duckdb.DuckDBPyConnection, source: str, params: dict) -> dict[str, int]:
    """Rows read and dropped per filter (sql/filter_stats.sql); a clear error when the source
    holds no rows or no candidate."""
    try:
        cur = con.execute(load_sql("filter_stats.sql"), params)
        names = [d[0] for d in cur.description]
        stats = {n: int(v or 0) for n, v in zip(names, cur.fetchall()[0], strict=True)}
    except duckdb.Error as exc:
        raise MetadataError(f"{source}: query failed: {exc}") from exc
    if stats["rows_read"] == 0:
        raise MetadataError(f"{source}: the parquet file(s) hold no rows (column TEXT is empty)")
    if stats["candidates"] == 0:
        raise MetadataError(
            f"{source}: no row passes the filters with a number word in TEXT "
            f"(rows read {stats['rows_read']}); check the source and thresholds"
        )
    return stats
