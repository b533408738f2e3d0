"""Baseline task: the synthetic world's stand-in for OpenAI's CLIP (L_CLIP-only pretraining)."""

from __future__ import annotations

from countclip.config import PretrainConfig
from countclip.stages.pretrain import plan_pretrain_stage, run_pretrain_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


@stage_task(plan_pretrain_stage, "pretrain-baseline")
def pretrain_task(world_manifest: dict, cfg: PretrainConfig, data_root: str) -> dict:
    """Pretrain the baseline once per world + config (cached; a crashed run resumes)."""
    progress = artifacts.ProgressReporter("pretrain-progress", "pretraining the baseline CLIP")
    manifest = run_pretrain_stage(world_manifest, cfg, data_root, progress=progress)
    progress.done()
    artifacts.markdown(
        "pretrain-summary", artifacts.manifest_markdown("Baseline pretraining", manifest)
    )
    artifacts.links("pretrain", manifest.get("outputs") or {})
    return manifest
