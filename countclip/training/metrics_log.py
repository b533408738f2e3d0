"""The append-only ``metrics.jsonl`` of a training run, consistent across a kill and resume."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from countclip.atomic import atomic_path


class MetricsLog:
    """metrics.jsonl, append-only; on resume, rows after the resumed step are dropped (they
    belong to the part of the killed run that will be replayed)."""

    def __init__(self, path: Path, resume_step: int | None, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
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

    def write(self, row: Mapping[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")


def last_losses(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.detach().item() for k, v in losses.items()}
