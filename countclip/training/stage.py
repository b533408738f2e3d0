"""Stage "train": fine-tune into ``<data_root>/train/<fingerprint>`` from the download and λ
manifests, resume a crashed run in the same directory, write the manifest last.

Apart from :mod:`countclip.training.loop` so that the loop can be driven from shards on disk
(``python -m countclip.training``, torchrun) without the stage bookkeeping.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import TrainConfig
from countclip.stage import Progress, Stage, StageOutput, StagePlan
from countclip.training.loop import train

TRAIN = Stage("train", "countclip.training.stage", resumable=True)


def shards_of(source: Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
    """Tar shards from a stage manifest (``outputs.shards``: a list or a folder), a
    manifest.json path, a folder (searched recursively: img2dataset writes ``pass-*/``) or a
    glob."""
    if isinstance(source, Mapping):
        shards = (source.get("outputs") or {}).get("shards")
        if not shards:
            raise ValueError("manifest: no outputs.shards (a list of tar files or a folder)")
        if isinstance(shards, list):
            return sorted(map(str, shards))
        source = shards
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        return shards_of(json.loads(path.read_text()))
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*.tar"))
    else:
        found = sorted(glob.glob(str(source)))
    if not found:
        raise FileNotFoundError(f"no .tar shards at {source}")
    return found


def lambdas_of(
    source: Mapping[str, Any] | str | os.PathLike[str] | None,
) -> dict[int, float] | None:
    if source is None:
        return None
    from countclip.data.lambdas import load_lambdas

    if not isinstance(source, Mapping) and Path(source).name == "manifest.json":
        source = json.loads(Path(source).read_text())
    try:
        return load_lambdas(source)
    except (KeyError, FileNotFoundError) as exc:
        raise ValueError(f"lambdas: cannot read λ values ({source}): {exc}") from exc


def plan_training(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
) -> StagePlan:
    upstream = {"counting": counting_manifest, "common": common_manifest}
    if lambdas_manifest is not None:
        upstream["lambdas"] = lambdas_manifest
    return TRAIN.plan(data_root, config=cfg, upstream=upstream)


def run_training(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
    progress: Progress | None = None,
    label: str = "train",
) -> dict:
    """Fine-tune into ``<data_root>/train/<fp>`` and write the manifest.

    A rerun after a crash resumes from the directory's last checkpoint (same fingerprint, same
    directory); a finished stage returns its manifest at once. ``label`` names the run's
    progress bar in a terminal (the demo trains two runs side by side).
    """

    def build(work: Path) -> StageOutput:
        result = train(
            cfg,
            shards_of(counting_manifest),
            shards_of(common_manifest),
            lambdas_of(lambdas_manifest),
            work,
            progress=progress,
            show_progress=label,
        )
        names = ("checkpoint", "last", "metrics", "loss_plot")
        return StageOutput(
            outputs={k: result[k] for k in names if k in result},
            stats={k: v for k, v in result.items() if k not in names and k != "state"},
        )

    plan = plan_training(counting_manifest, common_manifest, lambdas_manifest, cfg, data_root)
    return plan.run(build, progress)
