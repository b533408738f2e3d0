"""Stage "lambdas": class frequencies of what was downloaded (and kept by verification) -> λ
per count (:mod:`countclip.data.lambdas` has the formulas and their edge cases)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import LambdaConfig
from countclip.data.lambdas import write_lambdas
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

LAMBDAS = Stage("lambdas", __name__)


def plan_lambda_stage(
    download_manifest: Mapping[str, Any], cfg: LambdaConfig, data_root: str
) -> StagePlan:
    return LAMBDAS.plan(data_root, config=cfg, upstream={"download": download_manifest})


def run_lambda_stage(
    download_manifest: Mapping[str, Any],
    cfg: LambdaConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """λ per count from the counting set's frequencies: outputs ``lambdas`` (lambdas.json) and
    ``plot``. ``download_manifest`` is the verify stage's manifest (or, for the naive path, the
    counting download's)."""

    def build(work: Path) -> StageOutput:
        outputs, stats = write_lambdas(download_manifest, cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_lambda_stage(download_manifest, cfg, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_lambda_stage
PLAN = plan_lambda_stage
