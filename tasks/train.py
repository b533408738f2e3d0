"""Stage 5 task: CountCLIP fine-tuning (L_CLIP + λ·L_count), or the L_CLIP-only control."""

from __future__ import annotations

from countclip.config import TrainConfig
from countclip.stages.train import plan_training, run_training
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


@stage_task(plan_training, "train", task_run_name="train-{label}")
def train_task(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
    label: str = "countclip",
) -> dict:
    """Train one model. No retries: the stage resumes from its last checkpoint when rerun."""
    progress = artifacts.ProgressReporter(f"train-{label}-progress", f"training {label}")
    manifest = run_training(
        counting_manifest,
        common_manifest,
        lambdas_manifest,
        cfg,
        data_root,
        progress=progress,
        label=label,
    )
    progress.done()
    artifacts.markdown(
        f"train-{label}-summary", artifacts.manifest_markdown(f"Training ({label})", manifest)
    )
    artifacts.links(f"train-{label}", manifest.get("outputs") or {})
    return manifest
