"""Stage 3: img2dataset into webdataset shards, retry-failed passes, and exact accounting.

Layout of an ``output_dir`` written by :func:`download_urls`::

    download.json          what was asked (input, columns, shard size) and each finished pass
    pass-0/                img2dataset output for the input parquet itself
        00000.tar          webdataset shard: <key>.jpg, <key>.txt, <key>.json (extra columns)
        00000.parquet      one row per sample of the shard: status, error_message, ...
        00000_stats.json   written by img2dataset *after* the tar and parquet are closed
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
  parquet: a stats file cut by a crash is deleted (with its shard) before the pass reruns.
  A pass whose shards are all done is not started again (saves img2dataset's ~8 s start-up).
- **Subprocess.** Each pass runs img2dataset in a child process in its own process group.
  img2dataset installs a SIGINT handler (only legal in the main thread, and Prefect runs sync
  tasks in worker threads), prints a lot, and spawns a pool: in the child, all of that stays
  contained, the output goes to ``logs/``, and a watchdog kills the whole group when the
  parent disappears (a kill -9 of the caller must not leave orphan workers writing shards
  while a rerun rewrites them).
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

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countclip.config import DownloadConfig
from countclip.offline import OFFLINE_ENV
from countclip.stage import (
    Timer,
    atomic_path,
    atomic_write_json,
    fingerprint,
    read_manifest,
    stage_dir,
    write_manifest,
)

STAGE_VERSION = "download-1"
STATE_NAME = "download.json"
ROW_COL = "countclip_row"
"""Additional column carried by retry passes: the sample's row index in the original input."""

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

Progress = Callable[[float, str], None] | None
PathLike = str | os.PathLike[str]


class DownloadError(RuntimeError):
    """img2dataset failed as a whole (not single URLs): the message names the log file."""


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


def _shard_id(path: Path) -> int:
    return int(path.name.split("_")[0].split(".")[0])


def _completed_shards(pass_dir: Path) -> dict[int, dict[str, Any]]:
    """shard id -> stats for shards img2dataset finished (stats file readable, parquet readable)."""
    done: dict[int, dict[str, Any]] = {}
    if not pass_dir.is_dir():
        return done
    for stats_file in sorted(pass_dir.glob("*_stats.json")):
        try:
            stats = json.loads(stats_file.read_text())
            parquet = stats_file.with_name(stats_file.name.replace("_stats.json", ".parquet"))
            pq.read_metadata(parquet)
        except Exception:  # a crash mid-write: not done
            continue
        stats["shard"] = stats_file.name.replace("_stats.json", "")
        done[_shard_id(stats_file)] = stats
    return done


def _repair(pass_dir: Path) -> None:
    """Delete shards whose stats file exists but is unreadable (a crash while writing it):
    img2dataset's incremental mode would otherwise treat them as done forever."""
    if not pass_dir.is_dir():
        return
    good = _completed_shards(pass_dir)
    for stats_file in pass_dir.glob("*_stats.json"):
        if _shard_id(stats_file) in good:
            continue
        stem = stats_file.name.replace("_stats.json", "")
        for suffix in ("_stats.json", ".tar", ".parquet"):
            with contextlib.suppress(FileNotFoundError):
                (pass_dir / f"{stem}{suffix}").unlink()


def _pass_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in output_dir.glob("pass-*"):
        if p.is_dir() and p.name[5:].isdigit():
            found.append((int(p.name[5:]), p))
    return sorted(found)


def _read_state(output_dir: Path) -> dict[str, Any]:
    path = output_dir / STATE_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a download_urls output directory (no {STATE_NAME})")
    return json.loads(path.read_text())


def shard_paths(output_dir: PathLike) -> list[str]:
    """Absolute paths of the finished .tar shards that hold at least one success (all passes,
    pass then shard order). Unfinished shards (a crash) are never listed."""
    output_dir = Path(output_dir)
    paths = []
    for _, pass_dir in _pass_dirs(output_dir):
        for _sid, stats in sorted(_completed_shards(pass_dir).items()):
            tar = pass_dir / f"{stats['shard']}.tar"
            if stats.get("successes", 0) > 0 and tar.exists():
                paths.append(str(tar.resolve()))
    return paths


# --------------------------------------------------------------------------- results


def _attempts(output_dir: Path, nps: int, upto_pass: int | None = None) -> pa.Table:
    """Every recorded attempt: row (input index), pass, key, status, error_message, shard."""
    oom = math.ceil(math.log10(nps)) if nps > 1 else 0
    parts = []
    for pass_no, pass_dir in _pass_dirs(output_dir):
        if upto_pass is not None and pass_no >= upto_pass:
            continue
        for sid, stats in sorted(_completed_shards(pass_dir).items()):
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


def _final_status(
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
    return _final_status(_read_state(output_dir), output_dir)


def _summarise(table: pa.Table) -> tuple[int, dict[str, int]]:
    classes = Counter(c for c in table.column("error_class").to_pylist() if c is not None)
    successes = table.num_rows - sum(classes.values())
    return successes, dict(sorted(classes.items()))


# --------------------------------------------------------------------------- running img2dataset


def _img2dataset_kwargs(
    url_list: Path,
    out: Path,
    cfg: DownloadConfig,
    url_col: str,
    caption_col: str | None,
    additional: Sequence[str],
) -> dict[str, Any]:
    """img2dataset.download keyword arguments (the raw benchmark uses the same ones)."""
    return {
        "url_list": str(url_list),
        "output_folder": str(out),
        "input_format": "parquet",
        "output_format": "webdataset",
        "url_col": url_col,
        "caption_col": caption_col,
        "save_additional_columns": list(additional) or None,
        "image_size": cfg.image_size,
        "resize_mode": cfg.resize_mode,
        "encode_format": cfg.encode_format,
        "encode_quality": cfg.encode_quality,
        "processes_count": cfg.processes_count,
        "thread_count": cfg.thread_count,
        "number_sample_per_shard": cfg.number_sample_per_shard,
        "timeout": cfg.timeout,
        "retries": cfg.retries,
        "distributor": cfg.distributor,
        "incremental_mode": "incremental",
        "user_agent_token": cfg.user_agent_token,
        "disallowed_header_directives": list(cfg.disallowed_header_directives),
        "enable_wandb": False,
    }


_CHILD = """
import json, os, signal, sys, threading, time
parent = os.getppid()
def watchdog():  # the caller died (kill -9): take the whole group down with it
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)
threading.Thread(target=watchdog, daemon=True).start()
with open(sys.argv[1]) as f:
    kwargs = json.load(f)
from img2dataset import download
download(**kwargs)
"""
"""The img2dataset child: nothing but img2dataset is imported (start-up is part of every pass)."""


def _run_img2dataset(
    kwargs: dict[str, Any],
    log_dir: Path,
    name: str,
    total_shards: int,
    progress: Progress,
    span: tuple[float, float],
) -> float:
    """Run one img2dataset pass in a child process group; returns its wall seconds."""
    log_dir.mkdir(parents=True, exist_ok=True)
    args_path = log_dir / f"{name}.args.json"
    atomic_write_json(args_path, kwargs)
    log_path = log_dir / f"{name}.log"
    out = Path(kwargs["output_folder"])
    start = time.perf_counter()
    env = {**OFFLINE_ENV, **os.environ}  # albumentations' update check in every worker, wandb
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(args_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        (log_dir / f"{name}.pid").write_text(str(proc.pid))
        try:
            last_report = 0.0
            while proc.poll() is None:
                time.sleep(0.1)
                if progress and total_shards and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    done = len(list(out.glob("*_stats.json")))
                    frac = span[0] + (span[1] - span[0]) * min(done / total_shards, 1.0)
                    progress(frac, f"{name}: {done}/{total_shards} shards")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    # the pool's workers share the child's group: none may outlive the pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        raise DownloadError(f"img2dataset {name} exited with {proc.returncode}; see {log_path}")
    return time.perf_counter() - start


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
    progress: Progress = None,
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
            before = _final_status(state, output_dir, upto_pass=pass_no)
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
        _repair(pass_dir)
        done = _completed_shards(pass_dir)
        recorded = next((p for p in state["passes"] if p["pass"] == pass_no), None)
        if all(s in done for s in range(total_shards)):
            if recorded is None:  # finished, but killed before it was recorded
                recorded = _entry_from_stats(pass_no, pass_rows, done, total_shards)
                state["passes"] = sorted([*state["passes"], recorded], key=lambda p: p["pass"])
            recorded["skipped"] = True
            atomic_write_json(state_path, state)
            continue
        if progress:
            progress(pass_no * span, f"pass {pass_no}: {pass_rows} URLs")
        kwargs = _img2dataset_kwargs(pass_input, pass_dir, cfg, url_col, caption_col, extra)
        seconds = _run_img2dataset(
            kwargs,
            output_dir / "logs",
            f"pass-{pass_no}",
            total_shards,
            progress,
            (pass_no * span, (pass_no + 1) * span),
        )
        done = _completed_shards(pass_dir)
        entry = _entry_from_stats(pass_no, pass_rows, done, total_shards, seconds)
        state["passes"] = [p for p in state["passes"] if p["pass"] != pass_no] + [entry]
        state["passes"].sort(key=lambda p: p["pass"])
        atomic_write_json(state_path, state)

    if any(n >= n_passes for n, _ in _pass_dirs(output_dir)):  # fewer passes asked than before
        _drop_passes_from(output_dir, state, n_passes)
        atomic_write_json(state_path, state)
    final = _final_status(state, output_dir)
    successes, failures = _summarise(final)
    passes = []
    for p in state["passes"]:
        this = final.filter(pc.equal(final.column("pass"), p["pass"]))
        _, by_error = _summarise(this)
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


def _entry_from_stats(
    pass_no: int,
    rows: int,
    done: Mapping[int, Mapping[str, Any]],
    expected: int,
    seconds: float | None = None,
) -> dict[str, Any]:
    """A pass record; without a measured wall time, the span of its shards' stats."""
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


def _drop_passes_from(output_dir: Path, state: dict[str, Any], first: int) -> None:
    """Delete pass ``first`` and every later pass (directories, inputs, records)."""
    for pass_no, pass_dir in _pass_dirs(output_dir):
        if pass_no >= first:
            shutil.rmtree(pass_dir)
            with contextlib.suppress(FileNotFoundError):
                (output_dir / f"pass-{pass_no}.input.parquet").unlink()
    state["passes"] = [p for p in state["passes"] if p["pass"] < first]


def _same_rows(path: Path, rows: list[int]) -> bool:
    """True if a pass input from an interrupted run already holds exactly these rows."""
    if not path.exists():
        return False
    try:
        return pq.read_table(path, columns=[ROW_COL]).column(ROW_COL).to_pylist() == rows
    except Exception:
        return False


# --------------------------------------------------------------------------- the stage


def run_download_stage(
    source_manifest: Mapping[str, Any],
    table: str,
    cfg: DownloadConfig,
    data_root: str,
    progress: Progress = None,
) -> dict:
    """Download ``source_manifest["outputs"][table]`` ("counting" or "common") into webdataset
    shards: stage ``download-<table>``, outputs ``shards`` (dir) and ``results`` (parquet).

    Every input column but URL/TEXT (SAMPLE_ID, count, number span, ...) travels with the
    sample into the shard's json, except names img2dataset reserves for itself.
    """
    stage = f"download-{table}"
    try:
        source = Path(source_manifest["outputs"][table])
    except KeyError as exc:
        raise ValueError(f"source manifest: no outputs[{table!r}] parquet to download") from exc
    fp = fingerprint(stage, cfg, source_manifest["fingerprint"], STAGE_VERSION)
    out = stage_dir(data_root, stage, fp)
    done = read_manifest(out)
    if done is not None:
        return done
    if not source.is_file():
        raise FileNotFoundError(f"{source}: outputs[{table!r}] of the source manifest not found")
    names = pq.read_schema(source).names
    for col in ("URL", "TEXT"):
        if col not in names:
            raise ValueError(f"{source}: no column {col!r}")
    additional = [
        c for c in names if c not in ("URL", "TEXT") and c not in RESERVED_COLUMNS and c != ROW_COL
    ]
    with Timer() as timer:
        summary = download_urls(
            source,
            out / "shards",
            cfg,
            url_col="URL",
            caption_col="TEXT",
            additional_columns=additional,
            progress=progress,
        )
        results = read_results(out / "shards")
        results_path = out / "results.parquet"
        with atomic_path(results_path) as tmp:
            pq.write_table(results, tmp)
    return write_manifest(
        out,
        {
            "stage": stage,
            "fingerprint": fp,
            "directory": str(out.resolve()),
            "outputs": {
                "shards": str((out / "shards").resolve()),
                "results": str(results_path.resolve()),
            },
            "inputs": {"source": source_manifest["fingerprint"]},
            "config": cfg,
            "seconds": timer.seconds,
            "table": table,
            "input_rows": summary["input_rows"],
            "successes": summary["successes"],
            "failures": summary["failures"],
            "failures_by_error": summary["failures_by_error"],
            "images_per_s": summary["images_per_s"],
            "passes": summary["passes"],
            "shards": summary["shards"],
        },
    )
