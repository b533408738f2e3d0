"""``train-countclip``: build the dataset (cache hits when unchanged), then fine-tune."""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import Runner, prepare, select_for, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="train-countclip", log_prints=True)
def train_countclip(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
    label: str = "countclip",
    runner: Runner = "default",
) -> dict:
    """Train one model on the counting + common sets with the λ weights of the build.

    ``cfg.train.count_loss = "none"`` (or ``lambda_scale = 0``) trains the L_CLIP-only control.
    """
    cfg = prepare("train", cfg, data_root, config_path, overrides)
    with stoppable():
        manifest = pipeline.train(cfg, PrefectRunner(cfg.data_root), label, select_for(runner))
    print(
        f"{label}: best val counting accuracy {manifest['stats'].get('best_val_count_acc')}, "
        f"checkpoint {manifest.get('outputs', {}).get('checkpoint')}"
    )
    return manifest
