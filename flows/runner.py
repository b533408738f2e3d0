"""The pipeline's runner for Prefect: each stage of :mod:`countclip.pipeline` as its task.

:mod:`countclip.pipeline` writes the order of the stages once and asks a runner to run each by
name; here a name becomes the stage's task (``countclip_tasks.<stage>``) with its results
persisted under the data root, so every stage is a cached, retried task run in the UI and a
``submit`` is Prefect's own ``task.submit``.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.futures import PrefectFuture

from countclip_tasks.caching import bind
from countclip_tasks.captions import captions_task
from countclip_tasks.countbench import countbench_task
from countclip_tasks.download import download_task
from countclip_tasks.evaluate import evaluate_task, report_task
from countclip_tasks.lambdas import lambdas_task
from countclip_tasks.metadata import metadata_for
from countclip_tasks.pretrain import pretrain_task
from countclip_tasks.promote import promote_task
from countclip_tasks.train import train_task
from countclip_tasks.verify import verify_task
from countclip_tasks.wise_ft import wise_ft_task
from countclip_tasks.world import world_task

TASKS: dict[str, Task] = {
    "world": world_task,
    "captions": captions_task,
    "download": download_task,
    "verify": verify_task,
    "lambdas": lambdas_task,
    "pretrain": pretrain_task,
    "train": train_task,
    "wise_ft": wise_ft_task,
    "countbench": countbench_task,
    "evaluate": evaluate_task,
    "promote": promote_task,
    "report": report_task,
}
"""Stage name -> task (``metadata`` is chosen per source: :func:`metadata_for`)."""
UNCACHED = frozenset({"promote", "report"})


class PrefectRunner:
    """Runs a pipeline stage as its Prefect task inside the current flow."""

    def __init__(self, data_root: str) -> None:
        self.data_root = data_root

    def task(self, stage: str, *args: Any) -> Task:
        task = metadata_for(args[0]) if stage == "metadata" else TASKS[stage]
        return task if stage in UNCACHED else bind(task, self.data_root)

    def run(self, stage: str, *args: Any, **kwargs: Any) -> Any:
        return self.task(stage, *args)(*args, **kwargs)

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> PrefectFuture:
        return self.task(stage, *args).submit(*args, **kwargs)
