"""WiSE-FT task: a fine-tune interpolated with its starting weights (one α), after training."""

from __future__ import annotations

from countclip.stages.wise_ft import plan_wise_ft_stage, run_wise_ft_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


@stage_task(plan_wise_ft_stage, "wise-ft", task_run_name="wise-ft-{label}")
def wise_ft_task(
    train_manifest: dict,
    counting_manifest: dict,
    alpha: float,
    data_root: str,
    label: str = "countclip",
) -> dict:
    """θ(α) = (1 − α)·θ_start + α·θ_fine-tuned, scored on the counting validation split
    (deterministic: no retries)."""
    manifest = run_wise_ft_stage(train_manifest, counting_manifest, alpha, data_root, label=label)
    artifacts.markdown(
        f"wise-ft-{label}-summary",
        artifacts.manifest_markdown(f"WiSE-FT ({label}, α = {alpha:g})", manifest),
    )
    artifacts.links(f"wise-ft-{label}", manifest.get("outputs") or {})
    return manifest
