"""Where a training run's numbers go: the append-only ``metrics.jsonl`` (consistent across a
kill and resume), and, as open_clip's ``--report-to`` does, TensorBoard event files and W&B.

TensorBoard writes under the run's ``tensorboard/`` folder (``tensorboard --logdir data/train``
watches every run). W&B logs when it is installed and ``WANDB_MODE`` is not ``disabled`` (the
offline synthetic path disables it; the real path leaves it as the user set it up); a resumed
run continues its W&B run (the id is the run directory's).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from countclip.atomic import atomic_path

log = logging.getLogger(__name__)
Sink = Callable[[Mapping[str, Any]], None]


class MetricsLog:
    """metrics.jsonl, append-only; on resume, rows after the resumed step are dropped (they
    belong to the part of the killed run that will be replayed). Rows also go to the
    ``report_to`` sinks (``tensorboard``, ``wandb``)."""

    def __init__(
        self,
        path: Path,
        resume_step: int | None,
        enabled: bool,
        report_to: Iterable[str] = (),
    ) -> None:
        self.path, self.enabled = path, enabled
        self._sinks: list[Sink] = []
        self._closers: list[Callable[[], None]] = []
        if not enabled:
            return
        if resume_step is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            keep = []
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a partial last line from the kill
                if row.get("step", 0) <= resume_step:
                    keep.append(line)
            with atomic_path(path) as tmp:
                tmp.write_text("".join(k + "\n" for k in keep))
        for name in report_to:
            self._open(name, resume_step)

    def _open(self, name: str, resume_step: int | None) -> None:
        run_dir = self.path.parent
        if name == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events after the resumed step, as metrics.jsonl drops its rows
            purge = None if resume_step is None else resume_step + 1
            writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
            self._sinks.append(lambda row: _scalars(row, writer.add_scalar))
            self._closers.append(writer.close)
        elif name == "wandb":
            if importlib.util.find_spec("wandb") is None or os.environ.get("WANDB_MODE") in (
                "disabled",
            ):
                log.info("train.report_to wandb: W&B is not installed or WANDB_MODE=disabled")
                return
            import wandb

            run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
            run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "countclip"),
                name=run_dir.name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
            )
            self._sinks.append(
                lambda row: run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])
            )
            self._closers.append(run.finish)

    def write(self, row: Mapping[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            for sink in self._sinks:
                sink(row)

    def close(self) -> None:
        for close in self._closers:
            close()
        self._sinks, self._closers = [], []


def _scalars(row: Mapping[str, Any], add: Callable[[str, float, int], Any]) -> None:
    step = int(row.get("step", 0))
    for key, value in row.items():
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
            add(key, float(value), step)


def last_losses(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.detach().item() for k, v in losses.items()}
