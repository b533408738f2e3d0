"""Stage "captions": which candidate captions state a count, with the count and the span of
its number word (:mod:`countclip.data.captions`), and why every other caption was rejected.

The Dask path maps this stage over the metadata's parquet parts and merges the parts
(:func:`merge_caption_parts`) into one directory of the same stage family.
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import CaptionConfig
from countclip.data.captions.parser import CaptionError
from countclip.data.captions.tables import label_captions, merge_parts
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

CAPTIONS = Stage("captions", __name__)


def plan_caption_stage(metadata_manifest: dict, cfg: CaptionConfig, data_root: str) -> StagePlan:
    return CAPTIONS.plan(data_root, config=cfg, upstream={"metadata": metadata_manifest})


def run_caption_stage(
    metadata_manifest: dict, cfg: CaptionConfig, data_root: str, progress: Progress | None = None
) -> dict:
    """Outputs ``counting`` (accepted captions, with count and span), ``rejected`` (with the
    reason) and ``common`` (the metadata stage's common sample, passed through)."""

    def build(work: Path) -> StageOutput:
        outputs, stats = label_captions(
            metadata_manifest["outputs"]["candidates"], cfg, work, progress
        )
        return StageOutput(
            outputs={**outputs, "common": metadata_manifest["outputs"].get("common")},
            stats=stats,
        )

    return plan_caption_stage(metadata_manifest, cfg, data_root).run(build, progress)


def plan_caption_merge(part_manifests: list[dict], data_root: str) -> StagePlan:
    return CAPTIONS.plan(
        data_root,
        config={"merge_of": len(part_manifests)},
        upstream={f"part-{i:05d}": m for i, m in enumerate(part_manifests)},
    )


def merge_caption_parts(
    part_manifests: list[dict], data_root: str, progress: Progress | None = None
) -> dict:
    """One caption manifest from per-part ones: the tables concatenated, the tallies summed."""
    if not part_manifests:
        raise CaptionError("merge: no caption part manifests to merge")

    def build(work: Path) -> StageOutput:
        outputs, stats = merge_parts(part_manifests, work)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_caption_merge(part_manifests, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_caption_stage
PLAN = plan_caption_stage
