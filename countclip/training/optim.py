"""The open_clip optimisation recipe, shared by pretraining and fine-tuning: which parameters get
weight decay, the optimiser, and the learning-rate shape (linear warmup, then cosine to zero)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip's split: no weight decay for gains, biases, norms, logit scale/bias."""

    def exclude(name: str, p: nn.Parameter) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": weight_decay},
    ]


def adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, with torch's fused kernel.

    Without ``fused`` (or ``foreach``) torch updates parameter by parameter on CPU; the tiny
    model's step spent about a tenth of its time there, most of it on the 49k-row token embedding.
    The fused kernel is the same update in one pass per group (benchmarks/bench_train.py
    measures both on the same gradients); it runs on CPU and CUDA alike.
    """
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, fused=True
    )


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1 over ``warmup`` steps, then cosine to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        span = max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))

    return factor
