"""Seeds and RNG state: every draw of a training run is a function of its seed and step, and a
resumed run continues the exact stream (the state is saved with each checkpoint)."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

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
