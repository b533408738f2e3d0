"""``evaluate-countbench``: CountBench accuracy of a checkpoint (default: the promoted one)."""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import resolve_config, stoppable
from countclip_flows.runner import PrefectRunner
from countclip_tasks.promote import read_promoted


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
    with stoppable():
        result = pipeline.evaluate(cfg, PrefectRunner(cfg.data_root), checkpoint, label)
    print(f"{label}: CountBench accuracy {result.get('accuracy')}")
    return result
