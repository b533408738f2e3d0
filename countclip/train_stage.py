"""Stage 5 as files: fine-tune into ``<data_root>/train/<fingerprint>`` from the download and λ
manifests, resume a crashed run in the same directory, write the manifest last.

Apart from :mod:`countclip.train` (the loop) so that the loop can be driven from shards on disk
(``python -m countclip.train``, torchrun) without the stage bookkeeping, and vice versa.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from countclip.config import TrainConfig
from countclip.stage import Timer, fingerprint, read_manifest, stage_dir, write_manifest
from countclip.train import STAGE_VERSION, train

Progress = Callable[[float, str], None]


def shards_of(source: Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
    """Tar shards from a download manifest, a manifest.json path, a directory or a glob."""
    if isinstance(source, Mapping):
        shards = source.get("shards")
        if shards:
            return sorted(map(str, shards))
        folder = (source.get("outputs") or {}).get("shards")
        if not folder:
            raise ValueError("download manifest: no 'shards' list and no outputs.shards folder")
        source = folder
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        return shards_of(json.loads(path.read_text()))
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.tar"))
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
    from countclip.lambdas import load_lambdas

    if not isinstance(source, Mapping) and Path(source).name == "manifest.json":
        source = json.loads(Path(source).read_text())
    try:
        return load_lambdas(source)
    except (KeyError, FileNotFoundError) as exc:
        raise ValueError(f"lambdas: cannot read λ values ({source}): {exc}") from exc


def run_training(
    counting_manifest: dict,
    common_manifest: dict,
    lambdas_manifest: dict | None,
    cfg: TrainConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Stage "train": fine-tune into ``<data_root>/train/<fp>`` and write the manifest.

    A rerun after a crash resumes from the directory's last checkpoint (same fingerprint, same
    directory); a finished stage returns its manifest at once.
    """
    upstream = [
        counting_manifest.get("fingerprint"),
        common_manifest.get("fingerprint"),
        (lambdas_manifest or {}).get("fingerprint"),
    ]
    fp = fingerprint("train", cfg, *upstream, STAGE_VERSION)
    out = stage_dir(data_root, "train", fp)
    done = read_manifest(out)
    if done is not None:
        return done
    lambdas = lambdas_of(lambdas_manifest)
    with Timer() as timer:
        result = train(
            cfg,
            shards_of(counting_manifest),
            shards_of(common_manifest),
            lambdas,
            out,
            progress=progress,
            show_progress=False,
        )
    outputs = {k: result[k] for k in ("checkpoint", "last", "metrics", "loss_plot") if k in result}
    stats = {k: v for k, v in result.items() if k not in outputs and k != "state"}
    return write_manifest(
        out,
        {
            "stage": "train",
            "fingerprint": fp,
            "directory": str(out),
            "outputs": outputs,
            "inputs": {"counting": upstream[0], "common": upstream[1], "lambdas": upstream[2]},
            "config": cfg,
            "seconds": timer.seconds,
            **stats,
        },
    )
