"""CountBench in its real format -> validated rows -> images in webdataset shards.

The public benchmark (CountBench.json of teaching-clip-to-count.github.io) is a JSON list of
``{"image_url", "text", "number"}``: 540 rows, 60 per count 2..10. Its images live on the open
web and many of those URLs are dead by now, so the images go through the project's own download
stage (img2dataset, :func:`countclip.data.download.passes.download_urls`) exactly like the training
data, and the stage reports what it could fetch — "evaluated N of 540" — instead of failing. A
supplement file in the same format (the reproduction's "expanded CountBench": replacement images
for dead links) adds rows that are evaluated alongside.

Each row also gets the character span of its labelled number word (``number_start/end``, found
with :func:`countclip.data.captions.parser.find_number` for the *given* count), so the evaluator
replaces exactly that word and leaves any other number in the caption alone. A row whose number word
cannot be located is reported (``unlocated``) and not downloaded: it could not be scored.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countclip.atomic import atomic_path
from countclip.config import DownloadConfig, EvalConfig
from countclip.counts import COUNTS
from countclip.progress import Progress, report_to, sub_progress

REQUIRED_FIELDS = ("image_url", "text", "number")
ROW_COLUMNS = (
    "SAMPLE_ID",
    "URL",
    "TEXT",
    "number",
    "number_start",
    "number_end",
    "subset",
)
"""Columns of ``rows.parquet``; all but URL/TEXT travel with each image into its shard JSON."""


class TooFewImages(ValueError):
    """Fewer CountBench images could be evaluated than ``evaluate.min_images`` asks: an error,
    never a result (an accuracy over a handful of images, or over none, is not CountBench's)."""


def check_coverage(evaluated: int, rows: int, minimum: float, dead_by_error: dict) -> None:
    """Raise :class:`TooFewImages` unless ``evaluated >= minimum * rows``."""
    if rows and evaluated >= minimum * rows:
        return
    why = ", ".join(f"{n} {cls}" for cls, n in dead_by_error.items()) or "none fetched"
    raise TooFewImages(
        f"evaluate.min_images: {evaluated} of {rows} CountBench images could be evaluated "
        f"(needs {minimum:.0%}; dead links: {why}); rerun when the images are reachable, add a "
        "supplement (evaluate.supplement), or lower evaluate.min_images"
    )


class CountBenchFormatError(ValueError):
    """A CountBench file that is not a JSON list of valid rows; the message names file/row/field."""


def _read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=30) as response:
                return response.read()
        except OSError as exc:  # URLError / HTTPError / timeouts are all OSError
            raise FileNotFoundError(f"{source}: could not fetch CountBench file: {exc}") from exc
    if "://" in source:  # s3://, hf://, gs://... through fsspec when its backend is installed
        import fsspec

        with fsspec.open(source, "rb") as handle:
            return handle.read()
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{source}: CountBench file not found")
    return path.read_bytes()


def _parse_number(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise CountBenchFormatError(f"{where}: field 'number' must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise CountBenchFormatError(f"{where}: field 'number' must be an integer, got {value!r}")
    if value not in COUNTS:
        raise CountBenchFormatError(
            f"{where}: field 'number' must be in {COUNTS[0]}..{COUNTS[-1]}, got {value}"
        )
    return value


def _validate(rows: Any, source: str, subset: str) -> list[dict]:
    if not isinstance(rows, list):
        raise CountBenchFormatError(
            f"{source}: expected a JSON list of rows, got {type(rows).__name__}"
        )
    out: list[dict] = []
    for i, row in enumerate(rows):
        where = f"{source}: row {i}"
        if not isinstance(row, dict):
            raise CountBenchFormatError(f"{where}: expected an object, got {type(row).__name__}")
        for field in REQUIRED_FIELDS:
            if field not in row:
                raise CountBenchFormatError(f"{where}: missing field '{field}'")
        for field in ("image_url", "text"):
            value = row[field]
            if not isinstance(value, str) or not value.strip():
                raise CountBenchFormatError(
                    f"{where}: field '{field}' must be a non-empty string, got {value!r}"
                )
        out.append(
            {
                "image_url": row["image_url"].strip(),
                "text": row["text"],
                "number": _parse_number(row["number"], where),
                "subset": subset,
            }
        )
    return out


def load_countbench(source: str, supplement: str | None = None) -> list[dict]:
    """Rows ``{"image_url", "text", "number", "subset"}`` from a CountBench file (path or URL).

    ``subset`` is ``"main"`` for rows of ``source`` and ``"supplement"`` for rows of
    ``supplement`` (replacement rows in the same format, appended after the main rows). Any
    invalid row raises :class:`CountBenchFormatError` naming the file, the row index and the
    field: a silently skipped row would shift the "of 540" denominator.
    """
    if not source:
        raise CountBenchFormatError("evaluate.countbench: no CountBench file configured")
    rows: list[dict] = []
    for name, subset in ((source, "main"), (supplement, "supplement")):
        if not name:
            continue
        raw = _read_source(name)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CountBenchFormatError(f"{name}: not valid JSON: {exc}") from exc
        rows.extend(_validate(data, name, subset))
    return rows


def locate_numbers(rows: Sequence[dict]) -> list[tuple[int, int] | None]:
    """Character span of each row's labelled number word (None where it cannot be found)."""
    from countclip.data.captions.parser import find_number

    spans: list[tuple[int, int] | None] = []
    for row in rows:
        found = find_number(row["text"], row["number"])
        spans.append(None if found is None else (found.start, found.end))
    return spans


def rows_table(rows: Sequence[dict]) -> pa.Table:
    """The stage's ``rows.parquet``: SAMPLE_ID is the row index (main rows first)."""
    spans = locate_numbers(rows)
    return pa.table(
        {
            "SAMPLE_ID": pa.array(range(len(rows)), pa.int64()),
            "URL": pa.array([r["image_url"] for r in rows], pa.string()),
            "TEXT": pa.array([r["text"] for r in rows], pa.string()),
            "number": pa.array([r["number"] for r in rows], pa.int64()),
            "number_start": pa.array([s[0] if s else None for s in spans], pa.int64()),
            "number_end": pa.array([s[1] if s else None for s in spans], pa.int64()),
            "subset": pa.array([r.get("subset", "main") for r in rows], pa.string()),
        }
    )


def _write_parquet(table: pa.Table, path: Path) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def fetch_countbench(
    cfg: EvalConfig,
    download_cfg: DownloadConfig,
    work: Path,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Validate the rows, locate their number words, download the images into ``work``;
    return ``(outputs, stats)``. Dead URLs are recorded in ``dead_urls.parquet`` (row, URL,
    img2dataset's error message) and counted by error."""
    from countclip.data.download.passes import download_urls, read_results

    report = report_to(progress)
    table = rows_table(load_countbench(cfg.countbench, cfg.supplement))
    rows_path = _write_parquet(table, work / "rows.parquet")
    located = table.filter(pc.is_valid(table["number_start"]))
    unlocated = table.filter(pc.is_null(table["number_start"]))
    to_fetch = _write_parquet(located, work / "download_input.parquet")
    report(0.05, f"downloading {located.num_rows} CountBench images")
    shards = work / "shards"
    download_stats = download_urls(
        to_fetch,
        shards,
        download_cfg,
        url_col="URL",
        caption_col="TEXT",
        additional_columns=("SAMPLE_ID", "number", "number_start", "number_end", "subset"),
        progress=sub_progress(progress, 0.05, 0.95),
    )
    results = read_results(shards)
    ok = pc.equal(results["status"], "success")
    good = results.filter(ok)
    dead = results.filter(pc.invert(ok))
    dead_path = _write_parquet(_dead_table(dead), work / "dead_urls.parquet")
    evaluated_ids = {int(i) for i in good["SAMPLE_ID"].to_pylist()}
    subsets = table["subset"].to_pylist()
    rows_main = subsets.count("main")
    evaluated_main = sum(1 for i in evaluated_ids if subsets[i] == "main")
    evaluated_supp = len(evaluated_ids) - evaluated_main
    by_count = Counter(int(n) for n in good["number"].to_pylist())
    by_error = Counter(c or "other" for c in dead["error_class"].to_pylist())
    message = f"evaluated {evaluated_main} of {rows_main}"
    if subsets.count("supplement"):
        message += f" (+{evaluated_supp} of {subsets.count('supplement')} supplement rows)"
    if unlocated.num_rows:
        message += f"; {unlocated.num_rows} rows without their number word"
    report(0.99, message)
    check_coverage(evaluated_main, rows_main, cfg.min_images, dict(by_error.most_common()))
    outputs = {"rows": rows_path, "shards": shards, "dead_urls": dead_path}
    return outputs, {
        "countbench": cfg.countbench,
        "supplement": cfg.supplement,
        "rows": table.num_rows,
        "rows_main": rows_main,
        "rows_supplement": subsets.count("supplement"),
        "evaluated": len(evaluated_ids),
        "evaluated_main": evaluated_main,
        "evaluated_supplement": evaluated_supp,
        "evaluated_by_count": {c: by_count.get(c, 0) for c in COUNTS},
        "dead_urls": dead.num_rows,
        "dead_by_error": dict(by_error.most_common()),
        "unlocated": unlocated["SAMPLE_ID"].to_pylist(),
        "download": _small(download_stats),
        "message": message,
    }


def _dead_table(dead: pa.Table) -> pa.Table:
    return pa.table(
        {
            "SAMPLE_ID": dead["SAMPLE_ID"].cast(pa.int64()),
            "URL": dead["url"],
            "number": dead["number"].cast(pa.int64()),
            "subset": dead["subset"],
            "error_class": dead["error_class"],
            "error_message": dead["error_message"],
        }
    ).sort_by("SAMPLE_ID")


def _small(stats: Any) -> Any:
    """Keep the download stage's stats in the manifest only if they are small and plain."""
    if isinstance(stats, dict):
        return {k: v for k, v in stats.items() if isinstance(v, int | float | str | dict)}
    return None
