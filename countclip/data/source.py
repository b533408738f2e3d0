"""Stage 1's input: which files a ``metadata.source`` names, whether they are there and have
the columns the stage reads, and the URL blocklists (``metadata.exclude``) loaded into DuckDB.

Separate from the stage's queries (:mod:`countclip.data.metadata_query`) because it is about the
source, local or remote (:mod:`countclip.data.remote_parquet`), not about counting: every check here
fails before a scan starts, with an error naming the file, URL or setting.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from countclip import sql
from countclip.config import ExcludeList, MetadataConfig
from countclip.data import remote_parquet as rmt
from countclip.data.remote_parquet import RemoteFiles, is_remote

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
REQUIRED_COLUMNS = ("URL", "TEXT", "HEIGHT", "WIDTH", "similarity")
"""The columns the LAION filters read: ``metadata.columns`` cannot map them to nothing."""
EXCLUDE_SQL = {
    "text": "exclude_text.sql",
    "csv": "exclude_csv.sql",
    "parquet": "exclude_parquet.sql",
}


class MetadataError(ValueError):
    """Bad stage-1 input: unreadable source, missing LAION columns, or nothing selected."""


class MetadataSourceNotFound(MetadataError, FileNotFoundError):
    """The source glob/file matches no file."""


def exclude_lists(cfg: MetadataConfig) -> list[ExcludeList]:
    """``metadata.exclude`` with a bare path standing for ``{path: ...}`` (a text URL list)."""
    return [ExcludeList(path=e) if isinstance(e, str) else e for e in cfg.exclude]


def check_config(cfg: MetadataConfig) -> None:
    """What the config model leaves to the stage: every column the filters read has a source
    column, and the NSFW filter is off exactly when the source has no NSFW tags."""
    columns: dict[str, str | None] = dict(cfg.columns)
    absent = [c for c in REQUIRED_COLUMNS if c in columns and not columns[c]]
    if absent:
        raise MetadataError(f"metadata.columns: {', '.join(absent)} must name a source column")
    no_tags = "NSFW" in columns and columns["NSFW"] is None
    if no_tags != (cfg.allowed_nsfw is None):
        raise MetadataError(
            "metadata.allowed_nsfw: null (no NSFW filter) goes with columns.NSFW: null (a "
            "source without NSFW tags), and only with it"
        )


def column_map(cfg: MetadataConfig) -> dict[str, str | None]:
    """The source column of each LAION column (its own name unless ``metadata.columns`` says)."""
    columns: dict[str, str | None] = dict(cfg.columns)
    return {c: columns.get(c, c) for c in LAION_COLUMNS}


def remote_files(cfg: MetadataConfig) -> RemoteFiles | None:
    """Filesystems for the remote protocols the source and exclusion lists name (None if none)."""
    names = rmt.entries(cfg.source) + [e.path for e in exclude_lists(cfg)]
    protocols = {rmt.protocol_of(n) for n in names if is_remote(n)}
    if not protocols:
        return None
    try:
        return RemoteFiles(protocols, cfg.timeout)
    except ValueError as exc:
        raise MetadataError(str(exc)) from exc


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
    check_config(cfg)
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
        rows = con.execute(sql.load("source_columns.sql"), {"source": files}).fetchall()
    except duckdb.IOException as exc:
        if "No files found" in str(exc) or "No such file" in str(exc):
            raise MetadataSourceNotFound(f"no parquet file matches {describe(files)!r}") from exc
        raise MetadataError(f"cannot read parquet {describe(files)!r}: {first_line(exc)}") from exc
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


def _exclude_format(entry: ExcludeList) -> str:
    if entry.format != "auto":
        return entry.format
    name = entry.path.lower().split("?", 1)[0]
    return "parquet" if name.endswith(".parquet") else "csv" if name.endswith(".csv") else "text"


def load_exclusions(con: duckdb.DuckDBPyConnection, cfg: MetadataConfig) -> None:
    """Fill ``laion_exclude`` (sql/laion_source.sql) from ``metadata.exclude``; a list that
    cannot be read is a :class:`MetadataError` naming it (its file, format and column)."""
    for i, entry in enumerate(exclude_lists(cfg)):
        fmt = _exclude_format(entry)
        params = {"list": i, "hash": entry.hash, "path": entry.path}
        if fmt != "text":
            params["column"] = entry.column or ("URL" if entry.hash == "none" else entry.hash)
        try:
            con.execute(sql.load(EXCLUDE_SQL[fmt]), params)
        except duckdb.Error as exc:
            column = f", column {params['column']!r}" if "column" in params else ""
            raise MetadataError(
                f"metadata.exclude[{i}] {entry.path} ({fmt}{column}): {first_line(exc)}"
            ) from exc


def first_line(exc: BaseException) -> str:
    """DuckDB's message in one line: for a filesystem error, the Python exception's own line
    (``Type: message``) instead of the traceback DuckDB embeds."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if "Traceback" in str(exc):
        raised = [ln for ln in lines if not ln.startswith((" ", "LINE ", "^")) and ":" in ln]
        if raised:
            return raised[-1]
    return lines[0] if lines else type(exc).__name__
