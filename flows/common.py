"""Wiring shared by the flows: the data root, the synthetic world, the dataset build.

Flows only wire tasks; these helpers keep that wiring in one place so every flow builds the
dataset the same way (and therefore hits the same cache entries).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from countclip.config import PipelineConfig
from countclip.data.download.runner import clear_stop, request_stop, stop_requested
from countclip.stage import LOCK_TIMEOUT_ENV
from countclip.synthetic.stage import world_source, zero_shot_datasets
from countclip_flows.interrupts import stop_on_signals
from countclip_tasks.caching import bind
from countclip_tasks.captions import captions_task
from countclip_tasks.download import download_task
from countclip_tasks.lambdas import lambdas_task
from countclip_tasks.metadata import metadata_for
from countclip_tasks.verify import verify_task
from countclip_tasks.world import synthetic_world, world_task

Runner = Literal["default", "dask"]


def resolve_config(cfg: PipelineConfig | dict | None, data_root: str | None) -> PipelineConfig:
    """Validate ``cfg`` and make its data root absolute (workers run in temp directories)."""
    if cfg is None:
        cfg = PipelineConfig()
    elif not isinstance(cfg, PipelineConfig):
        cfg = PipelineConfig.model_validate(cfg)
    else:
        cfg = cfg.model_copy(deep=True)
    if data_root:
        cfg.data_root = data_root  # validated: a local directory
    cfg.data_root = str(Path(cfg.data_root).expanduser().resolve())
    apply_lock_timeout(cfg.lock_timeout)
    return cfg


def apply_lock_timeout(seconds: float | None) -> None:
    """``lock_timeout`` for every stage this process (and its Dask workers) runs: the library
    reads it from the environment, which worker processes inherit."""
    if seconds is None:
        os.environ.pop(LOCK_TIMEOUT_ENV, None)
    else:
        os.environ[LOCK_TIMEOUT_ENV] = str(seconds)


def _stoppable() -> contextlib.AbstractContextManager:
    """SIGTERM (a worker cancelling a deployment run) stops the run's downloads at once and
    bounds its shutdown; Prefect's own handler stays, so a cancel still ends as Cancelled.
    Signal handling lives in the main thread only: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    return stop_on_signals(own_handlers=False)


@contextlib.contextmanager
def world_context(cfg: PipelineConfig) -> Iterator[dict | None]:
    """Every flow's frame: stoppable by a signal and, for synthetic configs, serving the world
    for the block with the config pointed at it.

    Sets ``cfg.metadata.source`` (and ``cfg.evaluate.countbench`` and
    ``cfg.evaluate.zero_shot_datasets`` unless given) to the world's files; yields the world
    manifest, or None for real data.
    """
    with _stoppable():
        if not cfg.synthetic:
            yield None
            return
        with _served_world(cfg) as world:
            yield world


@contextlib.contextmanager
def _served_world(cfg: PipelineConfig) -> Iterator[dict]:
    with synthetic_world(cfg.world) as base_url:
        world = bind(world_task, cfg.data_root)(cfg.world, cfg.data_root, base_url)
        cfg.metadata.source = world_source(world)
        if not cfg.evaluate.countbench:
            cfg.evaluate.countbench = world["outputs"]["countbench"]
        if not cfg.evaluate.zero_shot_datasets:
            cfg.evaluate.zero_shot_datasets = zero_shot_datasets(world)
        yield world


def _stop_and_wait(futures: list) -> None:
    """Stop the downloads still running (they resume on a rerun) and wait for their tasks to
    end; their own errors (stopped) are not the build's: the caller re-raises its own."""
    ours = stop_requested() is None  # a signal may have asked already: leave that in place
    if ours:
        request_stop("another download of the build failed")
    try:
        for future in futures:
            with contextlib.suppress(BaseException):  # the first failure is the one to raise
                future.wait()
    finally:
        if ours:
            clear_stop()


def build_stages(cfg: PipelineConfig, runner: Runner = "default") -> dict:
    """metadata -> captions -> download (counting ∥ common) -> verify (counting) -> λ; returns
    every manifest. ``"verified"`` is the counting set training reads: the downloaded samples
    whose image shows the caption's count (all of them with ``verify.counter: none``)."""
    root = cfg.data_root
    if runner == "dask":
        from countclip_flows.dask_captions import captions_over_parts

        metadata, captions = captions_over_parts(cfg)
    else:
        metadata = bind(metadata_for(cfg.metadata), root)(cfg.metadata, root)
        captions = bind(captions_task, root)(metadata, cfg.captions, root)
    download = bind(download_task, root)
    counting_future = download.submit(captions, "counting", cfg.download, root)
    common_future = download.submit(captions, "common", cfg.download, root)
    try:
        counting = counting_future.result()
    except BaseException:
        _stop_and_wait([common_future])  # never leave it downloading from a closing server
        raise
    verified = bind(verify_task, root)(counting, cfg.verify, root)  # while "common" downloads
    common = common_future.result()
    lambdas = bind(lambdas_task, root)(verified, cfg.lambdas, root)
    return {
        "metadata": metadata,
        "captions": captions,
        "counting": counting,
        "verified": verified,
        "common": common,
        "lambdas": lambdas,
    }
