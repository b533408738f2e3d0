"""Baseline task: the synthetic world's stand-in for OpenAI's CLIP (L_CLIP-only pretraining)."""

from __future__ import annotations

from prefect import task

from countclip.config import PretrainConfig
from tasks import artifacts
from tasks.caching import TRAINING_LOOP_MODULES, stage_cache


@task(
    name="pretrain-baseline",
    # The baseline's data is split by the caption parser (counting captions are capped).
    cache_policy=stage_cache(
        "countclip.pretrain",
        "countclip.captions",
        "countclip.caption_rules",
        *TRAINING_LOOP_MODULES,
    ),
    persist_result=True,
    retries=0,
)
def pretrain_task(world_manifest: dict, cfg: PretrainConfig, data_root: str) -> dict:
    """Pretrain the baseline once per world + config (cached; a crashed run resumes)."""
    from countclip.pretrain import run_pretrain_stage

    progress = artifacts.ProgressReporter("pretrain-progress", "pretraining the baseline CLIP")
    manifest = run_pretrain_stage(world_manifest, cfg, data_root, progress=progress)
    progress.done()
    artifacts.markdown(
        "pretrain-summary", artifacts.manifest_markdown("Baseline pretraining", manifest)
    )
    artifacts.links("pretrain", manifest.get("outputs") or {})
    return manifest
