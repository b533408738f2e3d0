"""The one place a device setting ("auto", "cpu", "cuda", "cuda:1") becomes a torch device.

Training (under torchrun: one GPU per local rank), evaluation and the zero-shot check all go
through :func:`resolve_device`, so "auto" means the same thing everywhere.
"""

from __future__ import annotations

import torch


def resolve_device(spec: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else the CPU; a bare
    ``"cuda"`` -> ``cuda:<local_rank>``; anything else as torch reads it."""
    if str(spec) == "auto":
        return (
            torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
