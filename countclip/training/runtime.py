"""Process-level pieces of a training run, shared by fine-tuning and baseline pretraining:
torchrun's rank/world, the device, seeds and RNG state (exact resume), bf16 autocast, the
append-only metrics log and small DDP reductions."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from countclip.atomic import atomic_path
from countclip.config import TrainConfig
from countclip.devices import resolve_device
from countclip.training.model import unwrap_model


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (1 process otherwise)."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def resolve_train_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    return resolve_device(cfg.device, local_rank)


_GLOBAL_RNG_LOCK = threading.Lock()
"""Held by every read or write of the process-wide generators (see :func:`seeded_global_rng`)."""


def seed_everything(seed: int) -> None:
    with _GLOBAL_RNG_LOCK:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded with ``seed`` and restored afterwards,
    while no other thread of the process draws from it.

    Some draws can only come from the process-wide generator (torchvision's random transforms,
    ``nn.Module`` initialisation), and Prefect's thread runner trains two runs in one process
    (the demo's control and CountCLIP): without the lock their draws interleave, and a run's
    weights stop being a function of its own seed and steps.
    """
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def autocast_for(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    # bf16 only on CUDA: on CPU it is slower and changes numerics of the tests' reference runs.
    if device.type == "cuda" and cfg.precision in ("bf16", "amp"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rng_state() -> dict[str, Any]:
    # Under the lock: never capture another run's temporarily seeded state (seeded_global_rng).
    with _GLOBAL_RNG_LOCK:
        state = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    with _GLOBAL_RNG_LOCK:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def all_reduce_ints(values: Sequence[int], world_size: int) -> list[int]:
    if world_size == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def param_sum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in unwrap_model(model).parameters()))


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
