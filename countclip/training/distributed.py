"""Where a training run executes: torchrun's rank and world, the device (resolved once per run,
here), bf16 autocast, and the small DDP reductions the loop needs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

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


def autocast_for(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision: bf16`` (CUDA or CPU) and ``amp`` (CUDA: on CPU, measured
    no faster without AMX and other numerics, so ``amp`` stays fp32 there); else fp32."""
    if cfg.precision == "bf16" or (cfg.precision == "amp" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def all_reduce_ints(values: Sequence[int], world_size: int) -> list[int]:
    if world_size == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def param_sum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in unwrap_model(model).parameters()))
