"""What a resumable training state (``state.pt``) holds, and when it may be resumed.

Resume must be exact, so the state carries everything the next step depends on: model,
optimizer and scheduler states, the RNG states, the step, the best validation score so far and
the config it was written with. It is written atomically (temp file, then rename), so a run
killed mid-write leaves the previous state, never half of a new one; and the state it replaces
is kept as ``state.prev.pt``, so a ``state.pt`` damaged later (a truncated copy, a bad disk)
costs the steps since the previous checkpoint, never the run: resuming says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from countclip.atomic import atomic_path
from countclip.config import TrainConfig
from countclip.training.seeding import rng_state, set_rng_state

STATE_FILE = "state.pt"
PREVIOUS_FILE = "state.prev.pt"
log = logging.getLogger(__name__)

RESUME_FREE = frozenset(
    {"threads", "workers", "device", "checkpoint_every", "eval_every", "report_to"}
)
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


class CheckpointUnreadable(ValueError):
    """No resumable state could be read; the message names the files."""


def _read(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch's own errors name no file ("PytorchStreamReader ...")
        raise CheckpointUnreadable(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointUnreadable(f"{path}: not a training state")
    return state


def load_state(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The state at ``path`` if there is one (checked against ``cfg``), else None. A damaged
    ``state.pt`` falls back to the previous one beside it, with a warning that says so."""
    previous = path.with_name(PREVIOUS_FILE)
    if not path.exists() and not previous.exists():
        return None
    try:
        state = _read(path)
    except (CheckpointUnreadable, FileNotFoundError) as exc:
        if not previous.exists():
            raise CheckpointUnreadable(f"{exc}; no previous state ({previous}) to resume") from exc
        state = _read(previous)
        log.warning(
            "%s; resuming from the previous state %s (step %d)", exc, previous, state["step"]
        )
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
        if path.exists():  # the state this one replaces stays until the next one is written
            path.replace(path.with_name(PREVIOUS_FILE))
