"""``evaluate-countbench``: CountBench accuracy of a model.

Which model, when none is given: the checkpoint ``train-countclip`` (``countclip train``) made
with the same config, if that run finished; else the promoted model (``retrain-countclip``);
else the config's base model (``train.model``: OpenAI's weights on the real path). The flow
says which it chose; ``checkpoint`` picks another.
"""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import prepare, stoppable
from countclip_flows.runner import PrefectRunner
from countclip_tasks.promote import read_promoted


def default_model(cfg: PipelineConfig) -> tuple[str | None, str]:
    """``(checkpoint, label)`` of the model to evaluate when none is given, and why."""
    trained = pipeline.finished_training(cfg)
    if trained is not None:
        return pipeline.checkpoint_of(trained), "trained"
    promoted = read_promoted(cfg.data_root)
    if promoted and promoted.get("checkpoint"):
        return promoted["checkpoint"], "promoted"
    return None, "base"


@flow(name="evaluate-countbench", log_prints=True)
def evaluate_countbench(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
    checkpoint: str | None = None,
    label: str | None = None,
) -> dict:
    """Evaluate ``checkpoint`` (a path), else what ``train-countclip`` made with this config,
    else the promoted model, else the base model."""
    cfg = prepare("evaluate", cfg, data_root, config_path, overrides)
    chosen = "given"
    if checkpoint is None:
        checkpoint, chosen = default_model(cfg)
    label = label or ("checkpoint" if chosen == "given" else chosen)
    what = checkpoint or f"{cfg.train.model.name} ({cfg.train.model.pretrained or 'random init'})"
    print(f"evaluating the {chosen} model: {what} (pick another with --checkpoint PATH)")
    with stoppable():
        result = pipeline.evaluate(cfg, PrefectRunner(cfg.data_root), checkpoint, label)
    stats = result.get("stats") or {}
    print(
        f"{label}: CountBench accuracy {stats.get('accuracy'):.4f} "
        f"({stats.get('message')}; results: {(result.get('outputs') or {}).get('results')})"
    )
    return result
