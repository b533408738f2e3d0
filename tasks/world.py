"""The synthetic world's task: write the world's metadata parts, CountBenches and zero-shot
sets (the loopback server that serves its images runs for the whole flow:
:func:`countclip.pipeline.synthetic_world`). The world's port is fixed by its config, so
reruns (and a second run beside the first) get the same URLs and stay cache hits.
"""

from __future__ import annotations

from countclip.config import WorldConfig
from countclip.stages.world import plan_world_stage, run_world_stage
from countclip_tasks.caching import stage_task


@stage_task(plan_world_stage, "synthetic-world", task_run_name="synthetic-world")
def world_task(world: WorldConfig, data_root: str, base_url: str) -> dict:
    """Write the world's metadata parquet parts, CountBench JSON and zero-shot sets."""
    return run_world_stage(world, data_root, base_url)
