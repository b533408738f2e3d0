"""Wiring shared by the flows: the data root, the synthetic world, the dataset build.

Flows only wire tasks; these helpers keep that wiring in one place so every flow builds the
dataset the same way (and therefore hits the same cache entries).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from countclip.config import PipelineConfig
from tasks.caching import bind
from tasks.captions import captions_task
from tasks.download import download_task
from tasks.lambdas import lambdas_task
from tasks.metadata import metadata_for
from tasks.world import synthetic_world, world_task

Runner = Literal["default", "dask"]


def resolve_config(cfg: PipelineConfig | dict | None, data_root: str | None) -> PipelineConfig:
    """Validate ``cfg`` and make its data root absolute (workers run in temp directories)."""
    if cfg is None:
        cfg = PipelineConfig()
    elif not isinstance(cfg, PipelineConfig):
        cfg = PipelineConfig.model_validate(cfg)
    else:
        cfg = cfg.model_copy(deep=True)
    root = data_root or cfg.data_root
    if "://" not in root:
        root = str(Path(os.path.expanduser(root)).resolve())
    cfg.data_root = root
    return cfg


@contextlib.contextmanager
def world_context(cfg: PipelineConfig) -> Iterator[dict | None]:
    """For synthetic configs: serve the world for the block and point the config at it.

    Sets ``cfg.metadata.source`` (and ``cfg.evaluate.countbench`` unless given) to the world's
    files; yields the world manifest, or None for real data.
    """
    if not cfg.synthetic:
        yield None
        return
    with synthetic_world(cfg.world) as base_url:
        world = bind(world_task, cfg.data_root)(cfg.world, cfg.data_root, base_url)
        cfg.metadata.source = world["source"]
        if not cfg.evaluate.countbench:
            cfg.evaluate.countbench = world["outputs"]["countbench"]
        yield world


def build_stages(cfg: PipelineConfig, runner: Runner = "default") -> dict:
    """metadata -> captions -> download (counting ∥ common) -> λ; returns every manifest."""
    root = cfg.data_root
    if runner == "dask":
        from flows.dask_captions import captions_over_parts

        metadata, captions = captions_over_parts(cfg)
    else:
        metadata = bind(metadata_for(cfg.metadata), root)(cfg.metadata, root)
        captions = bind(captions_task, root)(metadata, cfg.captions, root)
    download = bind(download_task, root)
    counting_future = download.submit(captions, "counting", cfg.download, root)
    common_future = download.submit(captions, "common", cfg.download, root)
    counting = counting_future.result()
    common = common_future.result()
    lambdas = bind(lambdas_task, root)(counting, cfg.lambdas, root)
    return {
        "metadata": metadata,
        "captions": captions,
        "counting": counting,
        "common": common,
        "lambdas": lambdas,
    }
