"""Where training reads from: shard lists and λ values out of stage manifests, manifest files,
folders or globs — so the loop runs the same from the pipeline, from ``python -m
countclip.training`` and under torchrun."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
