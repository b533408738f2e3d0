"""Stage "verify": keep the downloaded counting samples whose image shows the caption's count
(the paper's detector step; :mod:`countclip.data.verify`), between the counting download and λ.

Resumable: every input shard is decided entirely or not at all, so a rerun after a kill decides
the rest (:mod:`countclip.data.verify.shards` says how).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import VerifyConfig
from countclip.data.verify.build import check_counter
from countclip.data.verify.shards import verify_download
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

VERIFY = Stage("verify", __name__, resumable=True)


def _weights_identity(cfg: VerifyConfig) -> dict[str, Any] | None:
    """A detector's output depends on its weights file: name, size and mtime (hashing
    hundreds of MB on every cache lookup would cost more than it saves)."""
    if cfg.counter != "torchvision" or not cfg.weights or cfg.weights == "random":
        return None
    path = Path(cfg.weights).expanduser()
    stat = path.stat() if path.is_file() else None
    return {"weights": str(path), "size": stat and stat.st_size, "mtime": stat and stat.st_mtime}


_SETTINGS = {
    "none": ("counter",),
    "classical": ("counter", "min_object_fraction", "classical_on_photos"),
    "torchvision": ("counter", "detector", "score_threshold", "weights", "min_size"),
}
"""The settings each counter's decisions depend on: changing the detector's settings does not
recompute a classical verification, nor anything downstream of it."""


def plan_verify_stage(
    download_manifest: Mapping[str, Any], cfg: VerifyConfig, data_root: str
) -> StagePlan:
    return VERIFY.plan(
        data_root,
        config={name: getattr(cfg, name) for name in _SETTINGS[cfg.counter]},
        upstream={"download": download_manifest},
        identity=_weights_identity(cfg),
    )


def run_verify_stage(
    download_manifest: Mapping[str, Any],
    cfg: VerifyConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Verify the counting download's samples: outputs ``shards`` (kept samples), ``results``
    (their download results, what λ reads) and ``decisions`` (one row per sample).

    A missing detector weights file fails here, before the stage directory exists."""
    outputs = download_manifest.get("outputs") or {}
    if "results" not in outputs or "shards" not in outputs:
        raise ValueError("download manifest: needs outputs['shards'] and outputs['results']")
    shards = sorted(map(str, outputs["shards"]))
    results = Path(outputs["results"])
    check_counter(cfg)

    def build(work: Path) -> StageOutput:
        kept, stats = verify_download(shards, results, cfg, work, progress)
        return StageOutput(outputs=kept, stats=stats)

    return plan_verify_stage(download_manifest, cfg, data_root).run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_verify_stage
PLAN = plan_verify_stage
