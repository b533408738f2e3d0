"""Stage "metadata": LAION metadata parquet -> counting candidates and a common sample.

The queries are :mod:`countclip.data.metadata_query` (DuckDB, ``sql/``). The stage's identity
includes the source's and the exclusion lists' identity (size and modification time, or a
remote file's ETag), so an edited source is a new stage.
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import MetadataConfig
from countclip.data.metadata_query import (
    exclude_lists,
    is_remote,
    select_rows,
    source_files,
    source_identity,
)
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

__all__ = ["is_remote", "plan_metadata_stage", "run_metadata_stage", "source_files"]

METADATA = Stage("metadata", __name__)


def plan_metadata_stage(cfg: MetadataConfig, data_root: str) -> StagePlan:
    identity = {
        "source": source_identity(cfg.source),
        "exclude": [source_identity(e.path) for e in exclude_lists(cfg)],
    }
    return METADATA.plan(data_root, config=cfg, identity=identity)


def run_metadata_stage(
    cfg: MetadataConfig, data_root: str, progress: Progress | None = None
) -> dict:
    """Select counting candidates and a seeded common sample from LAION metadata parquet:
    outputs ``candidates`` and ``common`` (:func:`~countclip.data.metadata_query.select_rows`
    says what the stats add up to)."""

    def build(work: Path) -> StageOutput:
        outputs, stats = select_rows(cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_metadata_stage(cfg, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_metadata_stage
PLAN = plan_metadata_stage
