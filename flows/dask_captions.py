"""The Dask path of the build: metadata and the caption stage mapped over the source's parquet
parts on a real ``distributed.LocalCluster`` (prefect-dask), then merged into one manifest.

For a large source (LAION-400M: 32 parts) the per-part work runs in parallel worker processes;
each part is its own cached task, so adding parts recomputes only the new ones.
"""

from __future__ import annotations

import glob

from prefect import flow

from countclip.config import PipelineConfig
from tasks.caching import bind
from tasks.captions import captions_task, merge_captions_task
from tasks.metadata import is_remote, metadata_for


def source_parts(source: str) -> list[str]:
    """The parquet parts of a local glob (a remote source stays one part: DuckDB globs it)."""
    if is_remote(source):
        return [source]
    parts = sorted(glob.glob(source))
    if not parts:
        raise FileNotFoundError(f"metadata.source {source!r}: no parquet files match")
    return parts


def dask_runner(workers: int = 2):
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                        "dashboard_address": None},
    )  # fmt: skip


@flow(name="captions-over-parts")
def captions_parts_flow(cfg: PipelineConfig) -> tuple[list[dict], dict]:
    root = cfg.data_root
    part_cfgs = [cfg.metadata.model_copy(update={"source": p}) for p in source_parts(
        cfg.metadata.source)]  # fmt: skip
    metadata = [bind(metadata_for(c), root).submit(c, root) for c in part_cfgs]
    captions = [bind(captions_task, root).submit(m, cfg.captions, root) for m in metadata]
    part_manifests = [c.result() for c in captions]
    merged = bind(merge_captions_task, root)(part_manifests, root)
    return [m.result() for m in metadata], merged


def captions_over_parts(cfg: PipelineConfig, workers: int = 2) -> tuple[dict, dict]:
    """Run the per-part subflow on a local Dask cluster; returns (metadata, captions)."""
    metadata, merged = captions_parts_flow.with_options(task_runner=dask_runner(workers))(cfg)
    return {"stage": "metadata", "parts": metadata, "fingerprint": merged["fingerprint"]}, merged
