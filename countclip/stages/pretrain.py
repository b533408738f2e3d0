"""Stage "pretrain" (synthetic only): the world's baseline CLIP, L_CLIP only from random init
(:mod:`countclip.training.pretrain`) on the world's own rows rendered in-process
(:mod:`countclip.synthetic.corpus`). Resumable: a rerun after a crash resumes training.

On real data this stage does not exist: ``train.model.pretrained: openai`` is the baseline.
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import PretrainConfig, WorldConfig
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan
from countclip.synthetic.corpus import corpus_once
from countclip.training.pretrain import pretrain

PRETRAIN = Stage("pretrain", __name__, resumable=True)


def plan_pretrain_stage(world_manifest: dict, cfg: PretrainConfig, data_root: str) -> StagePlan:
    return PRETRAIN.plan(data_root, config=cfg, upstream={"world": world_manifest})


def run_pretrain_stage(
    world_manifest: dict,
    cfg: PretrainConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Outputs the baseline ``checkpoint`` and its ``metrics``. ``world_manifest`` is the world
    stage's (its ``metadata`` output holds the parquet parts, its ``config`` the world whose
    ground truth the images are rendered from)."""
    if "config" not in world_manifest:
        raise ValueError("pretrain: the world manifest has no 'config' (the WorldConfig)")
    world = WorldConfig.model_validate(world_manifest["config"])

    def build(work: Path) -> StageOutput:
        metadata = world_manifest["outputs"]["metadata"]
        corpus = corpus_once(metadata, work / "corpus", cfg, world)
        outputs, stats = pretrain(corpus, cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_pretrain_stage(world_manifest, cfg, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_pretrain_stage
PLAN = plan_pretrain_stage
