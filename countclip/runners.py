"""Runners: what runs a stage by name for :mod:`countclip.pipeline`.

The pipeline writes the order once and asks a runner for each stage: :class:`LocalRunner` calls
the stage's ``RUN`` (:mod:`countclip.stages`) in this process, :class:`PlanRunner` only looks
up its finished manifest (``PLAN``), and the Prefect layer's runner (``countclip_flows.runner``)
calls the stage's task.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["LocalRunner", "NotBuilt", "PlanRunner", "stage_function"]


def stage_function(stage: str, kind: str = "RUN") -> Callable[..., Any]:
    """The ``RUN`` (or ``PLAN``) of ``countclip.stages.<stage>``; ``"report"``: the
    comparison report that ends the demo (no stage of its own)."""
    if stage == "report":
        stage, kind = "evaluate", "REPORT"
    try:
        module = importlib.import_module(f"countclip.stages.{stage}")
    except ModuleNotFoundError:
        raise KeyError(f"no stage {stage!r} in countclip.stages") from None
    function = getattr(module, kind, None)
    if function is None:
        raise KeyError(f"stage {stage!r} has no {kind}")
    return function


class LocalRunner:
    """Runs every stage in this process, through the stage functions themselves.

    ``workers`` > 1 runs submitted stages on that many threads (torch and img2dataset release
    the GIL); with 1, ``submit`` runs the stage at once and hands back its outcome.
    """

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def run(self, stage: str, *args: Any, **kwargs: Any) -> Any:
        return stage_function(stage)(*args, **kwargs)

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> Future:
        if self._pool is not None:
            return self._pool.submit(self.run, stage, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(self.run(stage, *args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class NotBuilt(LookupError):
    """:class:`PlanRunner`: a stage of the order is not finished under the data root."""


class PlanRunner:
    """Replays the order without running anything: each stage's ``plan_*`` and its finished
    manifest on disk, or :class:`NotBuilt`. What a finished run made, found the same way it was
    made (``countclip evaluate`` after ``countclip train`` finds the trained checkpoint)."""

    def run(self, stage: str, *args: Any, **kwargs: Any) -> Any:
        if stage in ("report", "promote"):
            raise NotBuilt(f"{stage} has no stage directory")
        plan = stage_function(stage, "PLAN")
        wanted = inspect.signature(plan).parameters
        done = plan(*args, **{k: v for k, v in kwargs.items() if k in wanted}).completed()
        if done is None:
            raise NotBuilt(f"stage {stage} is not finished")
        return done

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(self.run(stage, *args, **kwargs))
        except NotBuilt as exc:
            future.set_exception(exc)
        return future
