"""Training in one process or under torchrun, the same call either way.

``train.processes`` > 1 runs the loop as that many DDP processes (``torch.distributed.run``,
standalone rendezvous on this node: one process per GPU; gloo on CPU) in a child process and
waits for it; rank 0 writes the same ``summary.json`` a single process does, so the train stage
cannot tell the difference. The job (the config and the resolved inputs) is written next to
the run as ``launch.json``, so ``python -m countclip.training --job launch.json`` under a
scheduler's own launcher (SLURM, Kubernetes) reruns exactly it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json
from countclip.config import TrainConfig
from countclip.progress import Progress, report_to

JOB_FILE = "launch.json"
LOG_FILE = "launch.log"


class TrainingProcessesFailed(RuntimeError):
    """The torchrun job ended with an error; its log names the rank and the cause."""


def write_job(
    cfg: TrainConfig,
    counting_shards: Sequence[str],
    common_shards: Sequence[str],
    lambdas: Mapping[int, float] | None,
    out: Path,
) -> Path:
    """``launch.json`` in ``out``: everything a rank needs to rebuild the call."""
    job = {
        "train": cfg.model_dump(mode="json"),
        "counting": list(map(str, counting_shards)),
        "common": list(map(str, common_shards)),
        "lambdas": None if lambdas is None else {str(c): v for c, v in lambdas.items()},
        "out": str(out),
    }
    return atomic_write_json(out / JOB_FILE, job)


def read_job(path: str | os.PathLike[str]) -> dict[str, Any]:
    job = json.loads(Path(path).read_text())
    lambdas = job.get("lambdas")
    return {
        "cfg": TrainConfig.model_validate(job["train"]),
        "counting_shards": job["counting"],
        "common_shards": job["common"],
        "lambdas": None if lambdas is None else {int(c): float(v) for c, v in lambdas.items()},
        "out_dir": job["out"],
    }


def torchrun_command(processes: int, job: Path) -> list[str]:
    """The command that runs the job as ``processes`` DDP ranks on this node."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "countclip.training", "--job", str(job),
        "--no-progress",
    ]  # fmt: skip


def launch_training(
    cfg: TrainConfig,
    counting_shards: Sequence[str],
    common_shards: Sequence[str],
    lambdas: Mapping[int, float] | None,
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    show_progress: bool | str = True,
) -> dict[str, Any]:
    """Train into ``out_dir`` with ``cfg.processes`` processes; returns the run's summary."""
    from countclip.training.loop import SUMMARY_FILE, train

    if cfg.processes == 1:
        return train(cfg, counting_shards, common_shards, lambdas, out_dir, progress, show_progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = write_job(cfg, counting_shards, common_shards, lambdas, out)
    report_to(progress)(0.0, f"training on {cfg.processes} processes (torchrun)")
    with open(out / LOG_FILE, "ab") as log:
        done = subprocess.run(torchrun_command(cfg.processes, job), stdout=log, stderr=log)
    if done.returncode != 0:
        raise TrainingProcessesFailed(
            f"train.processes={cfg.processes}: torchrun exited with {done.returncode}; "
            f"the ranks' output is in {out / LOG_FILE}"
        )
    report_to(progress)(1.0, "training processes done")
    return json.loads((out / SUMMARY_FILE).read_text())
