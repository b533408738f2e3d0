"""Stage "countbench": a CountBench file in its real JSON format -> validated rows with the
span of each labelled number word -> the images, downloaded like the training data
(:mod:`countclip.evaluation.countbench`). Resumable, and it reports what it could fetch
("evaluated N of 540") instead of failing on dead links.
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import DownloadConfig, EvalConfig
from countclip.evaluation.countbench import fetch_countbench, load_countbench
from countclip.fingerprints import fingerprint
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

COUNTBENCH = Stage("countbench", __name__, resumable=True)


def plan_countbench_stage(
    cfg: EvalConfig, download_cfg: DownloadConfig, data_root: str
) -> StagePlan:
    """The fingerprint covers the rows' *content* (not the path), so an edited file or a
    different URL is a new stage, and the same file moved elsewhere is a cache hit."""
    rows = load_countbench(cfg.countbench, cfg.supplement)
    return COUNTBENCH.plan(
        data_root, config=download_cfg, identity={"rows": fingerprint(rows, length=32)}
    )


def run_countbench_stage(
    cfg: EvalConfig,
    download_cfg: DownloadConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Outputs ``rows`` (validated, with number spans), ``shards`` (the images) and
    ``dead_urls``."""

    def build(work: Path) -> StageOutput:
        outputs, stats = fetch_countbench(cfg, download_cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_countbench_stage(cfg, download_cfg, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_countbench_stage
PLAN = plan_countbench_stage
