"""Stage 3 task: img2dataset download of the counting or common set into webdataset shards.

Downloads fail transiently (timeouts, 5xx, a reset connection), so the task retries with
exponential backoff and jitter; bad input (a missing parquet, a wrong column) is not retried.

``COUNTCLIP_INJECT_DOWNLOAD_FAILURES=N`` makes the first N attempts of each download task raise
a ``ConnectionError`` before doing anything: a fault-injection switch for exercising the retry
path end to end (tests, chaos drills). Unset, it does nothing.
"""

from __future__ import annotations

import os
from typing import Literal

from prefect.runtime import task_run

from countclip.config import DownloadConfig
from countclip.stages.download import plan_download_stage, run_download_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task
from countclip_tasks.retrying import transient_retries

INJECT_ENV = "COUNTCLIP_INJECT_DOWNLOAD_FAILURES"


def _maybe_inject_failure(table: str) -> None:
    wanted = int(os.environ.get(INJECT_ENV, "0") or 0)
    attempt = int(task_run.run_count or 1)
    if attempt <= wanted:
        raise ConnectionError(
            f"injected transient failure ({INJECT_ENV}={wanted}) on attempt {attempt} of the "
            f"{table} download"
        )


@stage_task(
    plan_download_stage,
    "download",
    task_run_name="download-{table}",
    **transient_retries(retries=3, backoff=2.0, jitter=0.5),
)
def download_task(
    source_manifest: dict, table: Literal["counting", "common"], cfg: DownloadConfig, data_root: str
) -> dict:
    """Download one table of the caption stage's output (``counting`` or ``common``)."""
    _maybe_inject_failure(table)
    progress = artifacts.ProgressReporter(f"download-{table}-progress", f"download {table}")
    manifest = run_download_stage(source_manifest, table, cfg, data_root, progress=progress)
    progress.done()
    stats = manifest["stats"]
    failures = stats.get("failures_by_error") or {}
    rows = [{"outcome": "success", "samples": stats.get("successes", 0)}]
    rows += [{"outcome": str(err), "samples": n} for err, n in failures.items()]
    artifacts.table(
        f"download-{table}-results", rows, f"{table} download: successes and failures by error"
    )
    artifacts.markdown(
        f"download-{table}-summary", artifacts.manifest_markdown(f"Download ({table})", manifest)
    )
    return manifest
