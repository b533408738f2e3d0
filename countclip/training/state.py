"""What a resumable training state (``state.pt``) holds, and when it may be resumed.

Resume must be exact, so the state carries everything the next step depends on: model,
optimizer and scheduler states, the RNG states, the step, the best validation score so far and
the config it was written with. It is written atomically (temp file, then rename), so a run
killed mid-write leaves the previous state, never half of a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from countclip.atomic import atomic_path
from countclip.config import TrainConfig
from countclip.training.seeding import rng_state, set_rng_state

STATE_FILE = "state.pt"

RESUME_FREE = frozenset({"threads", "workers", "device", "checkpoint_every", "eval_every"})
"""Settings that may change between a run and its resumption without changing the result."""


def check_resumable(state: Mapping[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Resuming with another config would silently mix two runs: refuse, naming the fields."""
    saved, now = state.get("config", {}), cfg.model_dump(mode="json")
    changed = sorted(
        k for k in set(saved) | set(now) if k not in RESUME_FREE and saved.get(k) != now.get(k)
    )
    if changed:
        raise ValueError(
            f"{path}: checkpoint was written with a different train config (fields {changed}); "
            "use a new output directory or the original config"
        )


def load_state(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The state at ``path`` if there is one (checked against ``cfg``), else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    check_resumable(state, cfg, path)
    return state


def restore_state(
    state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Put the optimizer, the scheduler and the RNGs back where the state left them (the model
    weights are loaded earlier, before DDP wraps the model)."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])


def save_state(
    path: Path,
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    best: Mapping[str, Any],
    cfg: TrainConfig,
) -> None:
    """Write the state after ``step`` atomically (``model`` is the bare, unwrapped model)."""
    body = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "best": dict(best),
        "model_name": cfg.model.name,
        "config": cfg.model_dump(mode="json"),
    }
    with atomic_path(path) as tmp:
        torch.save(body, tmp)
