"""Stage "world" (synthetic only): the LAION-schema metadata parts, the CountBenches, their
cue-only baselines, the zero-shot sets and the ground truth
(:func:`~countclip.synthetic.world_files.write_world`), with image URLs on the world's loopback
server (:func:`serve_world`, which must be running while anything downloads from it).
"""

from __future__ import annotations

from pathlib import Path

from countclip.config import WorldConfig
from countclip.stages.base import Stage, StageOutput, StagePlan
from countclip.synthetic.serving import serve_world, served_world
from countclip.synthetic.world_files import write_world

__all__ = [
    "plan_world_stage",
    "run_world_stage",
    "serve_world",
    "world_source",
    "zero_shot_datasets",
]

WORLD = Stage("world", __name__)


def plan_world_stage(world: WorldConfig, data_root: str, base_url: str) -> StagePlan:
    return WORLD.plan(data_root, config=served_world(world), identity={"base_url": base_url})


def run_world_stage(world: WorldConfig, data_root: str, base_url: str) -> dict:
    """Write the world's files with image URLs under ``base_url``."""

    def build(work: Path) -> StageOutput:
        outputs, stats = write_world(world, work, base_url)
        return StageOutput(outputs=outputs, stats=stats)

    return plan_world_stage(world, data_root, base_url).run(build)


def world_source(world_manifest: dict) -> str:
    """The metadata glob of a world manifest (``metadata.source`` for the build)."""
    return str(Path(world_manifest["outputs"]["metadata"]) / "*.parquet")


def zero_shot_datasets(world_manifest: dict) -> dict[str, str]:
    """``{task: folder}`` of a world manifest's zero-shot sets."""
    root = Path(world_manifest["outputs"]["zero_shot"])
    return {task: str(root / task) for task in world_manifest["stats"]["zero_shot_tasks"]}


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_world_stage
PLAN = plan_world_stage
