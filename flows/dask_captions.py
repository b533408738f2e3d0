"""The Dask path of the build: metadata and the caption stage mapped over the source's parquet
parts on a real ``distributed.LocalCluster`` (prefect-dask), then merged into one manifest.

For a large source (LAION-400M: 32 parts; Re-LAION 2B-en: 128) the per-part work runs in
``dask.workers`` worker processes (default: one per core this process may use); each part is
its own cached task, so adding parts recomputes only the new ones. Each part's DuckDB gets an
equal share of ``metadata.threads`` and ``metadata.memory_limit`` (at least one thread), so
the workers together use what one DuckDB would, instead of workers x threads.
"""

from __future__ import annotations

import os

from prefect import flow
from prefect.context import FlowRunContext

from countclip.config import DaskConfig, MetadataConfig, PipelineConfig
from countclip.stages.metadata import source_files
from countclip_tasks.caching import bind
from countclip_tasks.captions import captions_task, merge_captions_task
from countclip_tasks.metadata import metadata_for


def cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and batch schedulers
    set), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(cfg: DaskConfig) -> int:
    return cfg.workers or cores()


def part_configs(cfg: MetadataConfig, workers: int) -> list[MetadataConfig]:
    """One metadata config per parquet part (remote files are checked here, naming a missing
    URL before any task starts), each with its share of DuckDB's threads and memory."""
    from dask.utils import parse_bytes

    share = {
        "threads": max(1, cfg.threads // workers),
        "memory_limit": f"{max(parse_bytes(cfg.memory_limit) // workers, 2**27)}B",
    }
    return [cfg.model_copy(update={"source": p, **share}) for p in source_files(cfg)]


def dask_runner(cfg: DaskConfig):
    """A local Dask cluster of :func:`worker_count` processes."""
    from prefect_dask import DaskTaskRunner

    kwargs = {
        "n_workers": worker_count(cfg),
        "threads_per_worker": cfg.threads_per_worker,
        "processes": True,
        "dashboard_address": None,
    }
    if cfg.memory_limit:
        kwargs["memory_limit"] = cfg.memory_limit
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


def cluster_workers() -> dict[str, int]:
    """``{worker address: pid}`` of the running flow's Dask cluster: what actually started."""
    runner = FlowRunContext.get().task_runner  # type: ignore[union-attr]
    return dict(runner.client.run(os.getpid))


@flow(name="captions-over-parts")
def captions_parts_flow(cfg: PipelineConfig) -> tuple[list[dict], dict, dict[str, int]]:
    root = cfg.data_root
    part_cfgs = part_configs(cfg.metadata, worker_count(cfg.dask))
    metadata = [bind(metadata_for(c), root).submit(c, root) for c in part_cfgs]
    captions = [bind(captions_task, root).submit(m, cfg.captions, root) for m in metadata]
    part_manifests = [c.result() for c in captions]
    merged = bind(merge_captions_task, root)(part_manifests, root)
    return [m.result() for m in metadata], merged, cluster_workers()


def captions_over_parts(cfg: PipelineConfig) -> tuple[dict, dict]:
    """Run the per-part subflow on a local Dask cluster; returns (metadata, captions), where
    metadata summarises the per-part metadata manifests and the cluster that ran them."""
    flow = captions_parts_flow.with_options(task_runner=dask_runner(cfg.dask))
    metadata, merged, workers = flow(cfg)
    summary = {
        "stage": "metadata",
        "fingerprint": merged["fingerprint"],
        "outputs": {},
        "stats": {
            "parts": [m["fingerprint"] for m in metadata],
            "rows_read": sum(m["stats"]["rows_read"] for m in metadata),
            "kept": sum(m["stats"]["kept"] for m in metadata),
            "dask_workers": len(workers),
            "dask_worker_pids": sorted(workers.values()),
        },
    }
    return summary, merged
