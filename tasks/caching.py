"""The cache policy every stage task uses, and where cached results live.

The cache key of a stage task *is* the stage's fingerprint (:mod:`countclip.stages.base`): the
library computes it from the task's inputs with the stage's ``plan_*`` function (semantic
config, upstream fingerprints, the stage's code version, derived from its source). So there is one
identity, not two: no list of modules to keep in step, speed-only settings never change a key,
and a code edit changes the key of that stage and, through the fingerprints, of every stage
downstream of it.

A cached result is only trusted while the stage is complete *on disk* (manifest present,
outputs present, built from the current upstream runs). When it is not, the policy drops the
stored record for the key before Prefect looks it up, so Prefect runs the task, the library
recomputes the stage, and the new result is stored under the same key. A deleted stage
directory is therefore recomputed, never reported as "Cached".

Results (the small manifest dicts) are persisted under ``<data_root>/.prefect-results``: the
cache lives next to the data it describes.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.tasks import Task

from countclip.stages.base import StagePlan

log = logging.getLogger(__name__)
RESULTS_DIRNAME = ".prefect-results"


@dataclass
class StageCachePolicy(CachePolicy):
    """Key = the stage fingerprint from ``plan(**task inputs)``, when the stage is done."""

    plan: Callable[..., StagePlan] | None = None

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if self.plan is None:
            return None
        wanted = inspect.signature(self.plan).parameters
        try:
            plan = self.plan(**{k: v for k, v in (inputs or {}).items() if k in wanted})
        except Exception as exc:  # bad input: let the task run and raise its clear error
            log.debug("no cache key (%s)", exc)
            return None
        if plan.completed() is None and "data_root" in inputs:
            _forget(inputs["data_root"], plan.fingerprint)
        return plan.fingerprint


def _forget(data_root: str | os.PathLike[str], key: str) -> None:
    """Delete the stored result record of ``key`` (the stage's outputs are not on disk)."""
    record = Path(os.fspath(data_root)).expanduser().resolve() / RESULTS_DIRNAME / key
    if record.is_file():
        log.info("stage %s is not complete on disk: its cached result is dropped", key)
        record.unlink(missing_ok=True)


def stage_cache(plan: Callable[..., StagePlan]) -> CachePolicy:
    """The policy for a task running the library stage that ``plan`` identifies."""
    return StageCachePolicy(plan=plan)


def stage_task(plan: Callable[..., StagePlan], name: str, **options: Any) -> Callable:
    """Prefect's ``@task`` for a task that runs one library stage.

    Its cache key is the stage's identity (``plan``) and its result is persisted (a cache hit
    needs the stored manifest); no retries unless ``options`` ask for them (deterministic
    stages fail the same way twice). Other ``options`` go to ``@task`` as they are.
    """
    options.setdefault("retries", 0)
    return task(name=name, cache_policy=stage_cache(plan), persist_result=True, **options)


def result_storage_for(data_root: str | os.PathLike[str]) -> Path:
    """Result storage under the (local) data root."""
    path = Path(os.fspath(data_root)).expanduser().resolve() / RESULTS_DIRNAME
    path.mkdir(parents=True, exist_ok=True)
    return path


def bind(task: Task, data_root: str | os.PathLike[str]) -> Task:
    """``task`` with its results (and cache records) persisted under ``data_root``.

    Flows call this at run time because the data root is a flow parameter, while a task's
    ``result_storage`` is otherwise fixed when the module is imported.
    """
    return task.with_options(result_storage=result_storage_for(data_root), persist_result=True)
