"""Stage 2 tasks: spaCy number-word filter, count labels and counterfactual captions; and the
merge of per-part caption stages (the Dask path)."""

from __future__ import annotations

from countclip.config import CaptionConfig
from countclip.stages.captions import (
    merge_caption_parts,
    plan_caption_merge,
    plan_caption_stage,
    run_caption_stage,
)
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


def _publish(manifest: dict) -> None:
    stats = manifest["stats"]
    artifacts.mapping_table(
        "captions-rejected-by-reason",
        stats.get("rejected_by_reason") or {},
        ("reason", "rows"),
        "rows rejected by the caption filter, by reason",
    )
    artifacts.mapping_table(
        "captions-counts-before-download",
        stats.get("counts_before_download") or {},
        ("count", "rows"),
        "counting captions kept, per count, before download",
    )
    artifacts.markdown("captions-summary", artifacts.manifest_markdown("Captions", manifest))


@stage_task(plan_caption_stage, "captions", task_run_name="captions")
def captions_task(metadata_manifest: dict, cfg: CaptionConfig, data_root: str) -> dict:
    """Deterministic: no retries; bad input (a missing column) fails at once."""
    progress = artifacts.ProgressReporter("captions-progress", "caption parsing")
    manifest = run_caption_stage(metadata_manifest, cfg, data_root, progress=progress)
    progress.done()
    _publish(manifest)
    return manifest


@stage_task(plan_caption_merge, "merge-captions", task_run_name="merge-captions")
def merge_captions_task(part_manifests: list[dict], data_root: str) -> dict:
    """One caption manifest from per-part ones."""
    manifest = merge_caption_parts(part_manifests, data_root)
    _publish(manifest)
    return manifest
