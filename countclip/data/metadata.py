"""Stage 1: LAION metadata -> counting candidates and a common (non-counting) sample.

All the data work happens in DuckDB with the queries kept in ``sql/*.sql`` and every value bound
as a parameter. Results are streamed to parquet with ``COPY (query) TO $out``: the table never
enters Python, so memory stays bounded by DuckDB's ``memory_limit`` whatever the source size.
The number-word regex here is only a cheap prefilter; :mod:`countclip.data.captions.parser` decides.

Every query reads ``laion_rows(files)`` (``sql/laion_source.sql``): the source under LAION-400M's
column names (``metadata.columns`` maps others, e.g. Re-LAION's), each row with the exclusion
lists (``metadata.exclude``) its URL is on; excluded rows are dropped before any other filter,
so nothing on a blocklist reaches the download. Remote files are read through fsspec
filesystems registered on the connection (:mod:`countclip.data.remote`): DuckDB never
downloads an extension.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from countclip import sql
from countclip.config import ExcludeList, MetadataConfig
from countclip.data import remote as rmt
from countclip.data.remote import RemoteFiles, RemoteSourceError, is_remote
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
STAGED_SOURCE = "remote-source.parquet"
"""Local copy of a remote source's LAION columns, in the work directory while the stage runs."""
EXCLUDE_SQL = {
    "text": "exclude_text.sql",
    "csv": "exclude_csv.sql",
    "parquet": "exclude_parquet.sql",
}


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


def column_map(cfg: MetadataConfig) -> dict[str, str | None]:
    """The source column of each LAION column (its own name unless ``metadata.columns`` says)."""
    return {c: cfg.columns.get(c, c) for c in LAION_COLUMNS}  # type: ignore[call-overload]


def remote_files(cfg: MetadataConfig) -> RemoteFiles | None:
    """Filesystems for the remote protocols the source and exclusion lists name (None if none)."""
    names = rmt.entries(cfg.source) + [e.path for e in cfg.exclude]
    protocols = {rmt.protocol_of(n) for n in names if is_remote(n)}
    if not protocols:
        return None
    try:
        return RemoteFiles(protocols, cfg.timeout)
    except ValueError as exc:
        raise MetadataError(str(exc)) from exc


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
    hashes = sorted({e.hash for e in cfg.exclude})
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


def describe(source: str | Sequence[str]) -> str:
    """``source`` for a message: itself, or a list's first entry and how many more."""
    if isinstance(source, str):
        return source
    items = list(source)
    return items[0] + (f" (and {len(items) - 1} more)" if len(items) > 1 else "") if items else "[]"


def source_files(cfg: MetadataConfig, remote: RemoteFiles | None = None) -> list[str]:
    """The parquet files ``metadata.source`` names (brace ranges and globs expanded); each
    remote file is asked for its size, so a missing or unreachable one fails here, naming its
    URL, before DuckDB starts. Raises :class:`MetadataSourceNotFound` for a missing file,
    :class:`MetadataError` for other bad input, ``RemoteSourceError`` for transient failures."""
    if not cfg.source:
        raise MetadataError("metadata.source is empty: give a parquet file, glob, URL or a list")
    remote = remote if remote is not None else remote_files(cfg)
    try:
        files = rmt.expand(cfg.source, remote)
        for f in files:
            if is_remote(f):
                remote.probe(f)  # type: ignore[union-attr]
            elif not os.path.isfile(f):
                raise FileNotFoundError(f"no parquet file {f!r}")
    except (FileNotFoundError, rmt.RemoteNotFound) as exc:
        raise MetadataSourceNotFound(f"metadata.source {describe(cfg.source)!r}: {exc}") from exc
    except (ValueError, rmt.RemoteAccessDenied) as exc:
        raise MetadataError(f"metadata.source: {exc}") from exc
    return files


def check_source(
    con: duckdb.DuckDBPyConnection,
    files: str | list[str],
    columns: dict[str, str | None] | None = None,
) -> list[str]:
    """Files the source matches; raise :class:`MetadataError` naming a file and its missing
    column(s), or :class:`MetadataSourceNotFound` when nothing matches."""
    columns = columns or {c: c for c in LAION_COLUMNS}
    if not files:
        raise MetadataError("metadata.source is empty: give a parquet file, glob or URL")
    try:
        rows = con.execute(load_sql("source_columns.sql"), {"source": files}).fetchall()
    except duckdb.IOException as exc:
        if "No files found" in str(exc) or "No such file" in str(exc):
            raise MetadataSourceNotFound(f"no parquet file matches {describe(files)!r}") from exc
        raise MetadataError(f"cannot read parquet {describe(files)!r}: {_first_line(exc)}") from exc
    if not rows:
        raise MetadataSourceNotFound(f"no parquet file matches {describe(files)!r}")
    for file_name, found in rows:
        missing = [
            c if src == c else f"{src} (for {c}, metadata.columns)"
            for c, src in columns.items()
            if src is not None and src not in set(found)
        ]
        if missing:
            raise MetadataError(
                f"{file_name}: missing column(s) {', '.join(missing)} "
                f"(expected the LAION columns {', '.join(LAION_COLUMNS)} or a metadata.columns "
                "mapping)"
            )
    return [r[0] for r in rows]


def _stat(name: str) -> tuple:
    try:
        st = os.stat(name)
        return (os.path.abspath(name), st.st_size, st.st_mtime_ns)
    except OSError:
        return (name,)


def source_identity(source: str | Sequence[str]) -> list:
    """Cheap identity of the input, known before the stage runs and without the network: path,
    size and mtime of each local file (hashing a 1 GB LAION part would cost more than the
    stage), or the URL itself for remote data."""
    parts: list = []
    for entry in rmt.entries(source):
        if is_remote(entry):
            parts.append(entry)
        elif rmt.has_magic(entry):
            parts += [_stat(n) for n in sorted(glob.glob(entry, recursive=True))] or [(entry,)]
        else:
            parts.append(_stat(entry))
    return parts


def _copy(con: duckdb.DuckDBPyConnection, sql_name: str, params: dict, out: Path) -> int:
    query = load_sql(sql_name).strip().rstrip(";")
    rows = con.execute(f"COPY ({query}) TO $out (FORMAT parquet)", {**params, "out": str(out)})
    return int(rows.fetchall()[0][0])


def plan_metadata_stage(cfg: MetadataConfig, data_root: str) -> StagePlan:
    identity = {
        "source": source_identity(cfg.source),
        "exclude": [source_identity(e.path) for e in cfg.exclude],
    }
    return METADATA.plan(data_root, config=cfg, identity=identity)


def _exclude_format(entry: ExcludeList) -> str:
    if entry.format != "auto":
        return entry.format
    name = entry.path.lower().split("?", 1)[0]
    return "parquet" if name.endswith(".parquet") else "csv" if name.endswith(".csv") else "text"


def load_exclusions(con: duckdb.DuckDBPyConnection, cfg: MetadataConfig) -> None:
    """Fill ``laion_exclude`` (sql/laion_source.sql) from ``metadata.exclude``; a list that
    cannot be read is a :class:`MetadataError` naming it (its file, format and column)."""
    for i, entry in enumerate(cfg.exclude):
        fmt = _exclude_format(entry)
        params = {"list": i, "hash": entry.hash, "path": entry.path}
        if fmt != "text":
            params["column"] = entry.column or ("URL" if entry.hash == "none" else entry.hash)
        try:
            con.execute(load_sql(EXCLUDE_SQL[fmt]), params)
        except duckdb.Error as exc:
            column = f", column {params['column']!r}" if "column" in params else ""
            raise MetadataError(
                f"metadata.exclude[{i}] {entry.path} ({fmt}{column}): {_first_line(exc)}"
            ) from exc


def _first_line(exc: BaseException) -> str:
    """DuckDB's message in one line: for a filesystem error, the Python exception's own line
    (``Type: message``) instead of the traceback DuckDB embeds."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if "Traceback" in str(exc):
        raised = [ln for ln in lines if not ln.startswith((" ", "LINE ", "^")) and ":" in ln]
        if raised:
            return raised[-1]
    return lines[0] if lines else type(exc).__name__


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
        return RemoteSourceError(f"reading {describe(cfg.source)} failed: {_first_line(exc)}")
    return MetadataError(f"{describe(cfg.source)}: query failed: {_first_line(exc)}")


def _copy_remote(con: duckdb.DuckDBPyConnection, files: list[str], out: Path) -> Path:
    """Copy the mapped LAION columns of ``files`` to ``out`` (sql/stage_source.sql), and point
    ``laion_rows`` at them: the remote bytes the stage needs cross the network once, instead
    of once per scan (three)."""
    _copy(con, "stage_source.sql", {"source": files}, out)
    con.execute("SET VARIABLE laion_columns = $columns", {"columns": {c: c for c in LAION_COLUMNS}})
    return out


def run_metadata_stage(
    cfg: MetadataConfig, data_root: str, progress: Progress | None = None
) -> dict:
    """Select counting candidates and a seeded common sample from LAION metadata parquet.

    Outputs ``candidates.parquet`` and ``common.parquet`` (the LAION columns). The manifest's
    stats satisfy ``rows_read == kept + sum(dropped.values())`` where ``kept`` is the number of
    candidates and ``dropped`` counts, in filter order, the rows each filter removed (rows on an
    exclusion list under ``excluded``, rows with no number word under ``no_number``; the common
    sample is drawn from those). ``excluded_by_list`` counts the source rows on each list.
    """
    report = report_to(progress)

    def build(work: Path) -> StageOutput:
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
                f"{describe(cfg.source)}: {kept} candidates written but "
                f"{stats['candidates']} counted"
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
                "excluded_by_list": {
                    e.path: int(per_list.get(i, 0)) for i, e in enumerate(cfg.exclude)
                },
                "common_rows": common,
                "common_requested": n_common,
            },
        )

    return plan_metadata_stage(cfg, data_root).run(build, progress)


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
