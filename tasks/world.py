"""The synthetic world for offline runs: the loopback image server and its files.

Flows with ``cfg.synthetic`` open :func:`synthetic_world` for their whole duration (the image
server must answer while img2dataset downloads) and run :func:`world_task` to write the
LAION-schema metadata parts, the synthetic CountBench and the zero-shot sets. The world's port
is fixed by its config, so reruns (and a second run beside the first) get the same URLs and
stay cache hits.
"""

from __future__ import annotations

from countclip.config import WorldConfig
from countclip.synthetic.stage import plan_world_stage, run_world_stage
from countclip.synthetic.stage import serve_world as synthetic_world
from countclip_tasks.caching import stage_task

__all__ = ["synthetic_world", "world_task"]


@stage_task(plan_world_stage, "synthetic-world", task_run_name="synthetic-world")
def world_task(world: WorldConfig, data_root: str, base_url: str) -> dict:
    """Write the world's metadata parquet parts, CountBench JSON and zero-shot sets."""
    return run_world_stage(world, data_root, base_url)
