"""WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): the fine-tuned
weights interpolated with the weights the fine-tune started from,

    θ(α) = (1 − α)·θ_start + α·θ_fine-tuned,

one coefficient α for every parameter, no extra training. α = 1 is the plain fine-tune, α = 0
the starting model. The starting weights are what the fine-tune's ``model.pretrained`` named:
the synthetic world's baseline checkpoint, or OpenAI's CLIP on the real path.

The interpolated model is scored on the counting validation split the fine-tune itself
selected its checkpoint on (:mod:`countclip.training.validation`: the same split, rule and
balanced score), so a sweep of α is chosen on validation data only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from countclip.config import ModelConfig
from countclip.devices import resolve_device
from countclip.training.model import create_model, save_checkpoint_for_open_clip
from countclip.training.shard_index import load_samples
from countclip.training.validation import (
    build_val_loader,
    per_count_recall,
    validate,
    validation_scores,
)

CHECKPOINT_FILE = "wise_ft.pt"


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"wise_ft_alpha must be in [0, 1] (1 = the plain fine-tune), got {alpha}")
    return alpha


def interpolate(
    start: Mapping[str, torch.Tensor], finetuned: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 − alpha)·start + alpha·finetuned`` for every floating-point tensor; other tensors
    (integer buffers) must agree and are taken as they are. The two state dicts must have the
    same keys and shapes: they are one architecture before and after fine-tuning."""
    alpha = check_alpha(alpha)
    if set(start) != set(finetuned):
        missing = sorted(set(start) ^ set(finetuned))[:5]
        raise ValueError(f"WiSE-FT: the two state dicts differ in their keys, e.g. {missing}")
    mixed: dict[str, torch.Tensor] = {}
    for key, before in start.items():
        after = finetuned[key]
        if before.shape != after.shape:
            raise ValueError(f"WiSE-FT: {key} is {tuple(before.shape)} vs {tuple(after.shape)}")
        if after.is_floating_point():
            a, b = before.detach().to(torch.float32), after.detach().to(torch.float32)
            mixed[key] = torch.lerp(a, b, alpha) if 0 < alpha < 1 else (b if alpha else a).clone()
        else:
            if not torch.equal(before.cpu(), after.cpu()):
                raise ValueError(f"WiSE-FT: non-float tensor {key} differs between the two")
            mixed[key] = after.detach().clone()
    return mixed


def wise_ft_model(
    start: ModelConfig, finetuned_checkpoint: str | os.PathLike[str], alpha: float, device: Any
) -> tuple[torch.nn.Module, Any, Any]:
    """``(model, preprocess_val, tokenizer)``: ``start``'s architecture holding θ(α), in eval
    mode. ``start`` is the fine-tune's model config (its ``pretrained`` is θ_start); locks are
    irrelevant here (a locked part is the same before and after)."""
    start = start.model_copy(
        update={"lock_image": False, "lock_text": False},
    )
    model, _, preprocess_val, tokenizer = create_model(start, device="cpu")
    finetuned = torch.load(Path(finetuned_checkpoint), map_location="cpu", weights_only=True)
    if isinstance(finetuned, Mapping) and "state_dict" in finetuned:
        finetuned = finetuned["state_dict"]
    finetuned = {k.removeprefix("module."): v for k, v in finetuned.items()}
    model.load_state_dict(interpolate(model.state_dict(), finetuned, alpha))
    model.to(device).eval()
    return model, preprocess_val, tokenizer


def validation_of(
    model: torch.nn.Module,
    preprocess_val: Any,
    tokenizer: Any,
    counting_shards: Sequence[str],
    val_fraction: float,
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """The counting validation scores of ``model`` exactly as the training loop logs them:
    ``val_count_acc``, ``val_count_balanced_acc``, ``val_samples`` and ``val_per_count``."""
    samples = load_samples(counting_shards, [], val_fraction)
    loader = build_val_loader(samples, tokenizer, preprocess_val, batch_size=batch_size)
    tallies = validate(model, loader, device, contextlib.nullcontext)
    scores = validation_scores(tallies)
    if scores is None:
        raise ValueError("WiSE-FT: the counting validation split is empty (val_fraction 0?)")
    return {
        "val_count_acc": scores["accuracy"],
        "val_count_balanced_acc": scores["balanced"],
        "val_samples": sum(tallies[len(tallies) // 2 :]),
        "val_per_count": per_count_recall(tallies),
    }


def wise_ft(
    start: ModelConfig,
    finetuned_checkpoint: str | os.PathLike[str],
    alpha: float,
    out_dir: str | os.PathLike[str],
    counting_shards: Sequence[str],
    val_fraction: float,
    batch_size: int = 64,
    device: str = "auto",
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write θ(α) to ``out_dir/wise_ft.pt`` (open_clip's format, like every training output)
    and score it on the counting validation split: ``(outputs, stats)``."""
    torch_device = resolve_device(device)
    model, preprocess_val, tokenizer = wise_ft_model(
        start, finetuned_checkpoint, alpha, torch_device
    )
    path = save_checkpoint_for_open_clip(model, Path(out_dir) / CHECKPOINT_FILE)
    with torch.no_grad():
        scores = validation_of(
            model, preprocess_val, tokenizer, counting_shards, val_fraction, batch_size,
            torch_device,
        )  # fmt: skip
    return {"checkpoint": path}, {"alpha": check_alpha(alpha), **scores}
