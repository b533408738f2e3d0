"""The synthetic world for offline runs: the loopback image server and its metadata.

Flows with ``cfg.synthetic`` open :func:`synthetic_world` for their whole duration (the image
server must answer while img2dataset downloads) and run :func:`world_task` to write the
LAION-schema metadata parts and the synthetic CountBench file.

The image URLs in the metadata contain the server's address, so the world's directory (and cache
key) includes ``base_url``; the server is asked for a port derived from the world config, so
reruns of the same world get the same URLs and stay cache hits.
"""

from __future__ import annotations

from prefect import task

from countclip.config import WorldConfig
from countclip.synthetic.stage import serve_world as synthetic_world
from tasks.caching import stage_cache

__all__ = ["synthetic_world", "world_task"]


@task(
    name="synthetic-world",
    task_run_name="synthetic-world",
    cache_policy=stage_cache("countclip.synthetic"),
    persist_result=True,
    retries=0,
)
def world_task(world: WorldConfig, data_root: str, base_url: str) -> dict:
    """Write the world's metadata parquet parts and CountBench JSON (a stage-like manifest)."""
    from countclip.synthetic.stage import run_world_stage

    return run_world_stage(world, data_root, base_url)
