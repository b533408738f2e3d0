"""The cache policy every stage task uses, and where cached results live.

Why a custom policy: Prefect's ``INPUTS`` policy would hash whole manifests (timings, write
times, absolute paths), so two runs that produced identical data would never share a cache key.
The stage contract (countclip/stage.py) already gives every manifest a *content fingerprint*; the
key here is built from exactly what decides a stage's output:

* the ``fingerprint`` of every upstream manifest passed in (not the rest of the manifest),
* the stage config (pydantic model, dumped to JSON) and the other plain parameters,
* the task's own source (Prefect's ``TaskSource``) and the source file of the library module it
  wraps, so editing either recomputes that stage.

So a rerun with identical inputs recomputes nothing, and a change to one stage's config changes
that stage's manifest fingerprint and therefore the keys of exactly the stages downstream of it.

Results (the small manifest dicts) are persisted under ``<data_root>/.prefect-results``: the
cache lives next to the data it describes, so deleting a data root also forgets its cache and a
cache hit can never point at stage outputs that are gone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy, TaskSource
from prefect.context import TaskRunContext
from prefect.filesystems import RemoteFileSystem, WritableFileSystem
from prefect.tasks import Task
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

RESULTS_DIRNAME = ".prefect-results"

# Parameters that never change a stage's output (callbacks).
DEFAULT_IGNORED: tuple[str, ...] = ("progress",)


def summarise(value: Any) -> Any:
    """Reduce a task input to what decides the stage output (stable and JSON-like).

    Manifests (dicts with a ``fingerprint``) become ``{stage, fingerprint}``; pydantic models
    their JSON dump; paths strings. Anything else must already be plain data.
    """
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        if "fingerprint" in value:
            return {"stage": value.get("stage"), "fingerprint": value["fingerprint"]}
        return {str(k): summarise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [summarise(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def module_source_hash(module: str) -> str | None:
    """sha256 of a module's source file, without importing it (None if it does not exist)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not os.path.exists(spec.origin):
        return None
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]


@dataclass
class StageCachePolicy(CachePolicy):
    """Key = upstream fingerprints + stage config + task source + wrapped library source."""

    library_modules: tuple[str, ...] = ()
    ignore: tuple[str, ...] = field(default_factory=lambda: DEFAULT_IGNORED)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        relevant = {
            name: summarise(value)
            for name, value in sorted((inputs or {}).items())
            if name not in self.ignore
        }
        source = TaskSource().compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        libraries = {m: module_source_hash(m) for m in self.library_modules}
        return hash_objects(
            "countclip-stage-v1", relevant, source, libraries, raise_on_failure=True
        )


TRAINING_LOOP_MODULES: tuple[str, ...] = (
    "countclip.train",
    "countclip.train_state",
    "countclip.augment",
    "countclip.runtime",
    "countclip.losses",
    "countclip.optim",
    "countclip.validation",
    "countclip.model",
    "countclip.data",
    "countclip.shard_index",
    "countclip.tokens",
)
"""What :func:`countclip.train.train` runs: fine-tuning and baseline pretraining both go through
it, so editing any of these must recompute both stages."""


def stage_cache(*library_modules: str, ignore: tuple[str, ...] = DEFAULT_IGNORED) -> CachePolicy:
    """The policy for a task wrapping ``library_modules`` (e.g. ``"countclip.captions"``)."""
    return StageCachePolicy(library_modules=tuple(library_modules), ignore=tuple(ignore))


def result_storage_for(data_root: str | os.PathLike[str]) -> Path | WritableFileSystem:
    """Result storage under the data root.

    A local root is a ``Path`` (Prefect makes it a ``LocalFileSystem``); an fsspec URL
    (``s3://...``) becomes a ``RemoteFileSystem`` block, saved under a name derived from the URL
    because Prefect only accepts saved blocks as a task's result storage.
    """
    root = os.fspath(data_root)
    if "://" in root:
        basepath = root.rstrip("/") + "/" + RESULTS_DIRNAME
        name = "countclip-results-" + hashlib.sha256(basepath.encode()).hexdigest()[:12]
        block = RemoteFileSystem(basepath=basepath)
        block.save(name, overwrite=True)
        return block
    path = Path(root).expanduser().resolve() / RESULTS_DIRNAME
    path.mkdir(parents=True, exist_ok=True)
    return path


def bind(task: Task, data_root: str | os.PathLike[str]) -> Task:
    """``task`` with its results (and cache records) persisted under ``data_root``.

    Flows call this at run time because the data root is a flow parameter, while a task's
    ``result_storage`` is otherwise fixed when the module is imported.
    """
    return task.with_options(result_storage=result_storage_for(data_root), persist_result=True)
