"""Stage "train": fine-tune into ``<data_root>/train/<fingerprint>`` from the verified counting
set, the common set and λ (:mod:`countclip.training`), resume a crashed run in the same
directory, write the manifest last.

The loop itself also runs without the stage bookkeeping: ``python -m countclip.training``, or
under torchrun.
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import TrainConfig
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan
from countclip.training.launch import launch_training
from countclip.training.sources import lambdas_of, shards_of

TRAIN = Stage("train", __name__, resumable=True)


def plan_training(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
) -> StagePlan:
    upstream = {"counting": counting_manifest, "common": common_manifest}
    if lambdas_manifest is not None:
        upstream["lambdas"] = lambdas_manifest
    return TRAIN.plan(data_root, config=cfg, upstream=upstream)


def run_training(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
    progress: Progress | None = None,
    label: str = "train",
) -> dict:
    """Fine-tune into ``<data_root>/train/<fp>`` and write the manifest.

    A rerun after a crash resumes from the directory's last checkpoint (same fingerprint, same
    directory); a finished stage returns its manifest at once. ``label`` names the run's
    progress bar in a terminal (the demo trains two runs side by side).
    """

    def build(work: Path) -> StageOutput:
        result = launch_training(
            cfg,
            shards_of(counting_manifest),
            shards_of(common_manifest),
            lambdas_of(lambdas_manifest),
            work,
            progress=progress,
            show_progress=label,
        )
        names = ("checkpoint", "last", "metrics", "loss_plot")
        return StageOutput(
            outputs={k: result[k] for k in names if k in result},
            stats={k: v for k, v in result.items() if k not in names and k != "state"},
        )

    plan = plan_training(counting_manifest, common_manifest, lambdas_manifest, cfg, data_root)
    return plan.run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_training
PLAN = plan_training
