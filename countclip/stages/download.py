"""Stage "download-<table>": the caption stage's ``counting`` or ``common`` table through
img2dataset into webdataset shards, every URL ending as a success or a recorded failure
(:mod:`countclip.data.download`).

Resumable: a killed download continues where it was (the stage builds in place and only its
manifest marks it done).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import DownloadConfig
from countclip.data.download.engines import check_cluster
from countclip.data.download.passes import download_table
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan


def download_stage(table: str) -> Stage:
    """Stage ``download-<table>``: resumable, so a killed download continues where it was."""
    return Stage(f"download-{table}", __name__, resumable=True)


def plan_download_stage(
    source_manifest: Mapping[str, Any], table: str, cfg: DownloadConfig, data_root: str
) -> StagePlan:
    return download_stage(table).plan(data_root, config=cfg, upstream={"source": source_manifest})


def run_download_stage(
    source_manifest: Mapping[str, Any],
    table: str,
    cfg: DownloadConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Download ``source_manifest["outputs"][table]`` ("counting" or "common"): outputs
    ``shards`` (the finished tar files) and ``results`` (one row per input sample: its final
    status)."""
    try:
        source = Path(source_manifest["outputs"][table])
    except KeyError as exc:
        raise ValueError(f"source manifest: no outputs[{table!r}] parquet to download") from exc

    def build(work: Path) -> StageOutput:
        outputs, stats = download_table(source, table, cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    plan = plan_download_stage(source_manifest, table, cfg, data_root)
    if plan.completed() is None:
        check_cluster(cfg)  # a bad cluster setting fails before the stage directory exists
    return plan.run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_download_stage
PLAN = plan_download_stage
