"""``train-countclip``: build the dataset (cache hits when unchanged), then fine-tune."""

from __future__ import annotations

from prefect import flow

from countclip.config import PipelineConfig
from countclip_flows.common import Runner, build_stages, resolve_config, world_context
from countclip_tasks.caching import bind
from countclip_tasks.train import train_task


@flow(name="train-countclip", log_prints=True)
def train_countclip(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    label: str = "countclip",
    runner: Runner = "default",
) -> dict:
    """Train one model on the counting + common sets with the λ weights of the build.

    ``cfg.train.count_loss = "none"`` (or ``lambda_scale = 0``) trains the L_CLIP-only control.
    """
    cfg = resolve_config(cfg, data_root)
    with world_context(cfg):
        data = build_stages(cfg, runner)
        manifest = bind(train_task, cfg.data_root)(
            data["verified"], data["common"], data["lambdas"], cfg.train, cfg.data_root, label=label
        )
    print(
        f"{label}: best val counting accuracy {manifest['stats'].get('best_val_count_acc')}, "
        f"checkpoint {manifest.get('outputs', {}).get('checkpoint')}"
    )
    return manifest
