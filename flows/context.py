"""What every flow does before it runs the pipeline: validate the config, fix the data root,
apply the lock timeout, and make the run stoppable by a signal.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Literal

from countclip.config import PipelineConfig
from countclip.pipeline import Select
from countclip.preflight import preflight
from countclip.stages.base import LOCK_TIMEOUT_ENV
from countclip.yamlconfig import deep_merge, load_config
from countclip_flows.interrupts import stop_on_signals

Runner = Literal["default", "dask"]
"""``dask`` maps metadata and captions over the source's parquet parts on a local Dask cluster."""


def resolve_config(
    cfg: PipelineConfig | dict | None,
    data_root: str | None,
    config_path: str | None = None,
    overrides: dict | None = None,
) -> PipelineConfig:
    """The run's config, validated, with an absolute data root (workers run in temp
    directories).

    ``config_path`` (a YAML of configs/, read when the run starts: what deployments pass, so an
    edited config file reaches the next run) wins over ``cfg`` (the UI's form); ``overrides``
    are deep-merged over it, like the CLI's ``--set``.
    """
    if config_path:
        cfg = load_config(config_path, overrides)
    elif overrides:
        base = cfg if isinstance(cfg, dict) else (cfg or PipelineConfig()).model_dump(mode="json")
        cfg = PipelineConfig.model_validate(deep_merge(base, overrides))
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


def prepare(
    command: str,
    cfg: PipelineConfig | dict | None,
    data_root: str | None,
    config_path: str | None = None,
    overrides: dict | None = None,
) -> PipelineConfig:
    """:func:`resolve_config`, then the preflight of ``command``: a run that would fail on a
    missing resource fails here, in seconds, naming the setting."""
    cfg = resolve_config(cfg, data_root, config_path, overrides)
    preflight(cfg, command)
    return cfg


def apply_lock_timeout(seconds: float | None) -> None:
    """``lock_timeout`` for every stage this process (and its Dask workers) runs: the library
    reads it from the environment, which worker processes inherit."""
    if seconds is None:
        os.environ.pop(LOCK_TIMEOUT_ENV, None)
    else:
        os.environ[LOCK_TIMEOUT_ENV] = str(seconds)


def stoppable() -> contextlib.AbstractContextManager:
    """SIGTERM (a worker cancelling a deployment run) stops the run's downloads at once and
    bounds its shutdown; Prefect's own handler stays, so a cancel still ends as Cancelled.
    Signal handling lives in the main thread only: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    return stop_on_signals(own_handlers=False)


def select_for(runner: Runner) -> Select | None:
    """How the build computes metadata and captions: the stages themselves (``default``) or
    mapped over the source's parquet parts on a local Dask cluster (``dask``)."""
    if runner == "dask":
        from countclip_flows.dask_captions import captions_over_parts

        return captions_over_parts
    return None
