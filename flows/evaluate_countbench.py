"""``evaluate-countbench``: CountBench accuracy of a checkpoint (default: the promoted one)."""

from __future__ import annotations

from prefect import flow

from countclip.config import PipelineConfig
from countclip.evaluation.promotion import read_promoted
from countclip_flows.common import resolve_config, world_context
from countclip_tasks.caching import bind
from countclip_tasks.evaluate import countbench_task, evaluate_task


def model_ref_for(cfg: PipelineConfig, checkpoint: str | None, label: str) -> dict:
    """The ``model_ref`` the evaluation stage takes."""
    return {
        "name": cfg.train.model.name,
        "checkpoint": checkpoint,
        "pretrained": cfg.train.model.pretrained,
        "label": label,
    }


@flow(name="evaluate-countbench", log_prints=True)
def evaluate_countbench(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    checkpoint: str | None = None,
    label: str | None = None,
) -> dict:
    """Evaluate ``checkpoint`` (a path), or the promoted model, or the base model."""
    cfg = resolve_config(cfg, data_root)
    if checkpoint is None:
        promoted = read_promoted(cfg.data_root)
        checkpoint = promoted.get("checkpoint") if promoted else None
    label = label or ("base" if checkpoint is None else "checkpoint")
    with world_context(cfg):
        bench = bind(countbench_task, cfg.data_root)(cfg.evaluate, cfg.download, cfg.data_root)
        result = bind(evaluate_task, cfg.data_root)(
            model_ref_for(cfg, checkpoint, label), bench, cfg.evaluate, cfg.data_root
        )
    print(f"{label}: CountBench accuracy {result.get('accuracy')}")
    return result
