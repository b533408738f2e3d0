"""``pretrain-baseline``: the synthetic world's baseline CLIP (L_CLIP only, counting captions
at LAION's few percent). ``countclip pretrain`` runs it and exports the result as the
``synthetic-demo`` weights the demo fine-tunes from (:mod:`countclip.training.shipped`)."""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import prepare, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="pretrain-baseline", log_prints=True)
def pretrain_baseline(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """Pretrain the baseline of ``cfg``'s world (cached: a second run is a cache hit)."""
    cfg = prepare("pretrain", cfg, data_root, config_path, overrides)
    with stoppable():
        manifest = pipeline.baseline(cfg, PrefectRunner(cfg.data_root))
    print(f"baseline: {pipeline.checkpoint_of(manifest)} ({manifest['stats']['steps']} steps)")
    return manifest
