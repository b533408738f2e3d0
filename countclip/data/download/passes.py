"""img2dataset into webdataset shards, retry-failed passes, and exact accounting.

Layout of an ``output_dir`` written by :func:`download_urls`::

    download.json          what was asked (input, columns, shard size) and each finished pass
    pass-0/                img2dataset output for the input parquet itself
        00000.tar          webdataset shard: <key>.jpg, <key>.txt, <key>.json (extra columns)
        00000.parquet      one row per sample of the shard: status, error_message, ...
        00000_stats.json   written by img2dataset *after* the tar and parquet are closed
    pass-0.ledger.json     the shards of pass 0 this process saw finished (the only ones trusted)
    pass-1.input.parquet   the samples pass 0 did not get (transient failures only)
    pass-1/                img2dataset output for them; ``countclip_row`` = input row index
    logs/pass-<i>.log      img2dataset's stdout/stderr (+ .args.json, .pid of the child)

img2dataset keys (the webdataset ``__key__``) are unique within a pass only: pass 1 starts at
shard 0 again. Identify samples by an input column (SAMPLE_ID) or ``read_results``' ``row``.

Why it is built this way:

- **Resume.** img2dataset's ``incremental_mode="incremental"`` skips shards that have a
  ``*_stats.json`` and redoes the others, rewriting the same file names, so a killed run
  resumes without duplicates as long as the shard boundaries are the same; they are, because
  the input of every pass is deterministic (the input parquet; the failures of earlier,
  finished passes). A shard counts as done here only with a readable stats file *and*
  parquet *and* an entry in the pass's ledger, written by the living parent when it sees the
  shard finished; any other shard (cut by a crash, or written after the parent died) is
  deleted before the pass reruns.
  A pass whose shards are all done is not started again (saves img2dataset's ~8 s start-up).
- **Subprocess.** Each pass runs img2dataset in a child process in its own process group.
  img2dataset installs a SIGINT handler (only legal in the main thread, and Prefect runs sync
  tasks in worker threads), prints a lot, and spawns a pool: in the child, all of that stays
  contained, the output goes to ``logs/``, and the group dies with its parent (a kill -9 of
  the caller must not leave orphan workers writing shards while a rerun rewrites them). No
  wait is unbounded: a child that writes nothing for ``stall_timeout`` is killed, a full
  disk is a ``DiskFullError`` at once, and :func:`~countclip.data.download.runner.request_stop`
  ends every pass within a second (:mod:`~countclip.data.download.runner`,
  :mod:`~countclip.data.download.watch`).
- **Retry-failed passes.** img2dataset retries a URL ``retries`` times in a row, at once; a
  pass re-queues, later, only samples whose failure class is in
  ``DownloadConfig.retry_error_classes`` (transient by default: 5xx, 429, timeouts,
  connection errors, truncated bodies, shards that never finished, unknown errors).
  Deterministic failures are not retried: 404/other 4xx (the file is gone), decode errors
  (the server sent something that is not an image) and opt-outs (X-Robots-Tag noai: retrying
  would not honour it). The final status of a sample is its last attempt.
- **Accounting.** :func:`read_results` has exactly one row per input row (input order): its
  final status, or ``status="missing"`` (class ``shard_failed``) when no finished shard holds
  it, so successes + failures == input rows always holds.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countclip.atomic import atomic_path, atomic_write_json
from countclip.config import DownloadConfig
from countclip.data.download.engines import ClusterUnreachable, check_cluster, engine_setup
from countclip.data.download.ledger import completed_shards, ledger_path, repair_pass, sums_path
from countclip.data.download.results import (
    ERROR_CLASSES,
    ROW_COL,
    STATE_NAME,
    PathLike,
    classify_error,
    final_status,
    forget_retryable,
    pass_dirs,
    pass_record,
    read_results,
    shard_paths,
    summarise,
)
from countclip.data.download.runner import DownloadStopped, img2dataset_kwargs, run_img2dataset
from countclip.data.download.watch import DownloadError, DownloadStalled, PassJob
from countclip.progress import Progress

log = logging.getLogger(__name__)

__all__ = [
    "ERROR_CLASSES",
    "ClusterUnreachable",
    "DownloadError",
    "DownloadStalled",
    "DownloadStopped",
    "classify_error",
    "download_table",
    "download_urls",
    "read_results",
    "shard_paths",
]


RESERVED_COLUMNS = frozenset(
    {
        "key",
        "caption",
        "url",
        "width",
        "height",
        "original_width",
        "original_height",
        "status",
        "error_message",
        "exif",
        "md5",
        "sha256",
        "sha512",
    }
)
"""Names img2dataset refuses in ``save_additional_columns`` (it writes them itself)."""


def _check_input(
    input_parquet: Path, url_col: str, caption_col: str | None, additional: Sequence[str]
) -> int:
    if not input_parquet.is_file():
        raise FileNotFoundError(f"{input_parquet}: input parquet not found")
    meta = pq.read_metadata(input_parquet)
    names = set(meta.schema.to_arrow_schema().names)
    for role, col in (("url_col", url_col), ("caption_col", caption_col)):
        if col is not None and col not in names:
            raise ValueError(f"{input_parquet}: no column {col!r} ({role})")
    for col in additional:
        if col not in names:
            raise ValueError(f"{input_parquet}: no column {col!r} (additional_columns)")
        if col in RESERVED_COLUMNS or col == ROW_COL:
            raise ValueError(f"{input_parquet}: column {col!r} is reserved by img2dataset")
    return meta.num_rows


def download_urls(
    input_parquet: PathLike,
    output_dir: PathLike,
    cfg: DownloadConfig,
    *,
    url_col: str = "URL",
    caption_col: str | None = "TEXT",
    additional_columns: Iterable[str] = (),
    progress: Progress | None = None,
) -> dict:
    """One img2dataset run over ``input_parquet`` plus up to ``cfg.retry_failed_passes``
    passes over its transient failures, into ``output_dir`` (resumable: rerun after a crash).

    Returns a summary: input_rows, successes, failures, failures_by_error {class: n},
    images_per_s (successes / wall seconds of all passes), seconds, shards, and per pass
    (rows, successes, failures_by_error, seconds, images_per_s, skipped = already done).
    """
    if not cfg.disallowed_header_directives:
        raise ValueError(
            "DownloadConfig.disallowed_header_directives is empty: opt-outs "
            "(X-Robots-Tag noai, ...) must stay honoured"
        )
    check_cluster(cfg)  # before anything is written
    input_parquet = Path(input_parquet).resolve()
    output_dir = Path(output_dir).resolve()
    additional = list(dict.fromkeys(additional_columns))
    rows = _check_input(input_parquet, url_col, caption_col, additional)
    nps = cfg.number_sample_per_shard
    read_columns = [url_col] + ([caption_col] if caption_col else []) + additional
    state = {
        "input": str(input_parquet),
        "input_rows": rows,
        "url_col": url_col,
        "caption_col": caption_col,
        "additional_columns": additional,
        "read_columns": read_columns,
        "number_sample_per_shard": nps,
        "passes": [],
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    state_path = output_dir / STATE_NAME
    if state_path.exists():
        old = json.loads(state_path.read_text())
        for key in (
            "input",
            "input_rows",
            "url_col",
            "caption_col",
            "additional_columns",
            "number_sample_per_shard",
        ):
            if old.get(key) != state[key]:
                raise ValueError(
                    f"{state_path}: {key} was {old.get(key)!r}, now {state[key]!r}; "
                    "resume needs the same input and shard size (new output_dir?)"
                )
        state["passes"] = old.get("passes", [])
    atomic_write_json(state_path, state)
    retry_classes = set(cfg.retry_error_classes)
    unknown = retry_classes - set(ERROR_CLASSES)
    if unknown:
        raise ValueError(
            f"DownloadConfig.retry_error_classes: unknown {sorted(unknown)}; "
            f"classes are {', '.join(ERROR_CLASSES)}"
        )
    if "opt_out" in retry_classes:
        raise ValueError(
            "DownloadConfig.retry_error_classes: opt_out cannot be retried (the site said no)"
        )
    n_passes = 1 + cfg.retry_failed_passes
    span = 1.0 / n_passes

    for pass_no in range(n_passes):
        pass_dir = output_dir / f"pass-{pass_no}"
        if pass_no == 0:
            pass_input, pass_rows, extra = input_parquet, rows, additional
        else:
            before = final_status(state, output_dir, upto_pass=pass_no)
            todo = [
                r
                for r, c in zip(
                    before.column("row").to_pylist(),
                    before.column("error_class").to_pylist(),
                    strict=True,
                )
                if c is not None and c in retry_classes
            ]
            if not todo:
                _drop_passes_from(output_dir, state, pass_no)  # stale ones would double-count
                atomic_write_json(state_path, state)
                break
            pass_input = output_dir / f"pass-{pass_no}.input.parquet"
            table = pq.read_table(input_parquet, columns=read_columns).take(todo)
            table = table.append_column(ROW_COL, pa.array(todo, pa.int64()))
            if not _same_rows(pass_input, todo):
                # new or changed (an earlier pass finished a shard it had lost): shards of an
                # older input of this pass, and every later pass, no longer line up with it
                _drop_passes_from(output_dir, state, pass_no)
                atomic_write_json(state_path, state)
                with atomic_path(pass_input) as tmp:
                    pq.write_table(table, tmp)
            pass_rows, extra = len(todo), [*additional, ROW_COL]
        total_shards = math.ceil(pass_rows / nps)
        if redone := repair_pass(pass_dir):
            log.info("%s: redoing shards %s (unfinished or not in the ledger)", pass_dir, redone)
        done = completed_shards(pass_dir)
        recorded = next((p for p in state["passes"] if p["pass"] == pass_no), None)
        if all(s in done for s in range(total_shards)):
            if recorded is None:  # finished, but killed before it was recorded
                recorded = pass_record(pass_no, pass_rows, done, total_shards)
                state["passes"] = sorted([*state["passes"], recorded], key=lambda p: p["pass"])
            recorded["skipped"] = True
            atomic_write_json(state_path, state)
            continue
        if progress:
            progress(pass_no * span, f"pass {pass_no}: {pass_rows} URLs")
        job = PassJob(
            name=f"pass-{pass_no}",
            kwargs=img2dataset_kwargs(pass_input, pass_dir, cfg, url_col, caption_col, extra),
            rows=pass_rows,
            total_shards=total_shards,
            log_dir=output_dir / "logs",
            stall_timeout=cfg.stall_timeout,
        )
        span_of_pass = (pass_no * span, (pass_no + 1) * span)
        seconds = run_img2dataset(job, progress, span_of_pass, engine_setup(cfg))
        done = completed_shards(pass_dir)
        entry = pass_record(pass_no, pass_rows, done, total_shards, seconds)
        state["passes"] = [p for p in state["passes"] if p["pass"] != pass_no] + [entry]
        state["passes"].sort(key=lambda p: p["pass"])
        atomic_write_json(state_path, state)

    if any(n >= n_passes for n, _ in pass_dirs(output_dir)):  # fewer passes asked than before
        _drop_passes_from(output_dir, state, n_passes)
        atomic_write_json(state_path, state)
    final = final_status(state, output_dir)
    successes, failures = summarise(final)
    passes = []
    for p in state["passes"]:
        this = final.filter(pc.equal(final.column("pass"), p["pass"]))
        _, by_error = summarise(this)
        passes.append({**p, "failures_by_error": by_error})
    seconds = sum(p["seconds"] for p in state["passes"])
    if progress:
        progress(1.0, f"{successes}/{rows} downloaded")
    return {
        "input_rows": rows,
        "successes": successes,
        "failures": rows - successes,
        "failures_by_error": failures,
        "seconds": round(seconds, 3),
        "images_per_s": round(successes / seconds, 2) if seconds > 0 else None,
        "passes": passes,
        "shards": shard_paths(output_dir),
    }


def _drop_passes_from(output_dir: Path, state: dict[str, Any], first: int) -> None:
    """Delete pass ``first`` and every later pass (directories, inputs, records)."""
    for pass_no, pass_dir in pass_dirs(output_dir):
        if pass_no >= first:
            shutil.rmtree(pass_dir)
            leftovers = (
                output_dir / f"pass-{pass_no}.input.parquet",
                ledger_path(pass_dir),
                sums_path(pass_dir),
            )
            for leftover in leftovers:
                leftover.unlink(missing_ok=True)
    state["passes"] = [p for p in state["passes"] if p["pass"] < first]


def _same_rows(path: Path, rows: list[int]) -> bool:
    """True if a pass input from an interrupted run already holds exactly these rows."""
    if not path.exists():
        return False
    try:
        return pq.read_table(path, columns=[ROW_COL]).column(ROW_COL).to_pylist() == rows
    except Exception:
        return False


class TooFewDownloads(DownloadError):
    """Fewer URLs downloaded than ``download.min_success`` asks: an error, never a dataset."""


def check_success(summary: Mapping[str, Any], minimum: float, table: str) -> None:
    """Raise :class:`TooFewDownloads` unless ``successes >= minimum * input_rows``."""
    rows, successes = summary["input_rows"], summary["successes"]
    if rows and successes >= minimum * rows:
        return
    failures = summary.get("failures_by_error") or {}
    why = ", ".join(f"{n} {cls}" for cls, n in sorted(failures.items(), key=lambda kv: -kv[1]))
    raise TooFewDownloads(
        f"download.min_success: {successes} of {rows} {table} URLs downloaded (needs "
        f"{minimum:.0%}; failures: {why or 'none recorded'}); rerun when the source answers "
        "(its transient failures are retried), or lower download.min_success"
    )


def download_table(
    source: Path, table: str, cfg: DownloadConfig, work: Path, progress: Progress | None = None
) -> tuple[dict, dict]:
    """Download the ``source`` parquet's URLs (one row per sample) into ``work/shards`` and
    write ``work/results.parquet`` (one row per input row: its final status); return
    ``(outputs, stats)``.

    Every input column but URL/TEXT (SAMPLE_ID, count, number span, ...) travels with the
    sample into the shard's json, except names img2dataset reserves for itself.
    """
    if not source.is_file():
        raise FileNotFoundError(f"{source}: outputs[{table!r}] of the source manifest not found")
    names = pq.read_schema(source).names
    for col in ("URL", "TEXT"):
        if col not in names:
            raise ValueError(f"{source}: no column {col!r}")
    additional = [
        c for c in names if c not in ("URL", "TEXT") and c not in RESERVED_COLUMNS and c != ROW_COL
    ]
    summary = download_urls(
        source,
        work / "shards",
        cfg,
        url_col="URL",
        caption_col="TEXT",
        additional_columns=additional,
        progress=progress,
    )
    try:
        check_success(summary, cfg.min_success, table)
    except TooFewDownloads:
        forget_retryable(work / "shards", cfg.retry_error_classes)  # a rerun retries them
        raise
    with atomic_path(work / "results.parquet") as tmp:
        pq.write_table(read_results(work / "shards"), tmp)
    return {"shards": summary["shards"], "results": work / "results.parquet"}, {
        "table": table,
        **{k: summary[k] for k in ("input_rows", "successes", "failures")},
        "failures_by_error": summary["failures_by_error"],
        "images_per_s": summary["images_per_s"],
        "passes": summary["passes"],
    }
