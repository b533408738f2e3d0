"""open_clip models: create, load and save, plus the tiny CPU config this project trains.

Everything goes through open_clip so that a checkpoint written here is an ordinary open_clip
checkpoint: ``open_clip.create_model_and_transforms(name, pretrained=path)`` loads it unchanged,
and the real path is the same call with ``pretrained="openai"`` (ViT-B-32, downloaded from the
hub where the network allows it; offline, ``HF_HUB_OFFLINE=1`` makes that fail fast).

The tiny config (``countclip-tiny``) is small enough to train on 2 CPU cores: a 64 px ViT
(patch 8, width 128, 4 layers, 4 heads) and a 3-layer text transformer with context 16, using the
ViT-B-32 BPE vocabulary (SimpleTokenizer ships it, so no download). It is registered with
``open_clip.add_model_config`` when this module is imported, so ``open_clip.create_model*`` and
``open_clip.get_tokenizer`` know the name in every process that imports ``countclip.training.model``
(torchrun workers included). ``countclip-small`` is the same design 1.5x wider (width 192, 6 heads)
with a 4-layer text tower: ~1.9x the tiny model's step time on the CPU, the next size up when the
question is whether capacity, not the recipe, limits what the counting loss can add.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from countclip.config import ModelConfig
from countclip.training.encoders import encode_text
from countclip.training.shipped import shipped_path

TINY_MODEL = "countclip-tiny"

TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {
        "image_size": 64,
        "layers": 4,
        "width": 128,
        "head_width": 32,  # width / head_width = 4 heads
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 128,
        "heads": 4,
        "layers": 3,
    },
}

SMALL_MODEL = "countclip-small"

SMALL_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 192,
    "vision_cfg": {**TINY_MODEL_CONFIG["vision_cfg"], "width": 192},  # 192 / 32 = 6 heads
    "text_cfg": {**TINY_MODEL_CONFIG["text_cfg"], "width": 192, "heads": 6, "layers": 4},
}


def register_model_config(name: str, config: dict[str, Any]) -> None:
    """Register ``config`` under ``name`` with open_clip (idempotent).

    open_clip only reads configs from JSON files (``add_model_config`` takes a file or folder
    whose ``<stem>.json`` becomes the name). Its registry keeps entries once scanned, so the
    JSON is written to a private temp folder, registered, and removed again: nothing is left on
    disk and the folder entry in open_clip's path list simply matches no file afterwards.
    """
    if open_clip.get_model_config(name) == config:
        return
    with tempfile.TemporaryDirectory(prefix="countclip-oc-") as folder:
        path = Path(folder) / f"{name}.json"
        path.write_text(json.dumps(config))
        open_clip.add_model_config(path)
    if open_clip.get_model_config(name) is None:  # pragma: no cover - open_clip changed
        raise RuntimeError(f"open_clip did not register model config {name!r}")


register_model_config(TINY_MODEL, TINY_MODEL_CONFIG)
register_model_config(SMALL_MODEL, SMALL_MODEL_CONFIG)


def _check_pretrained(pretrained: str | None) -> str | None:
    """A path-looking ``pretrained`` that does not exist is an error naming the file (open_clip
    would otherwise try to treat it as a hub tag and fail obscurely)."""
    if pretrained is None or pretrained == "":
        return None
    if looks_like_path(pretrained) and not Path(pretrained).is_file():
        raise FileNotFoundError(f"model.pretrained: checkpoint file not found: {pretrained}")
    return pretrained


def looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def uses_quick_gelu(cfg: ModelConfig) -> bool:
    """Whether ``cfg``'s model must be built with QuickGELU: as set, else as its pretrained tag
    was trained. OpenAI's CLIP weights were trained with QuickGELU, and open_clip builds
    ``ViT-B-32`` with GELU and only warns when ``pretrained="openai"`` is loaded into it, which
    silently changes every activation of the model. A checkpoint path says nothing about its
    activation: fine-tuned OpenAI weights keep ``quick_gelu`` in the config that made them."""
    if cfg.quick_gelu is not None:
        return cfg.quick_gelu
    if cfg.name.endswith("-quickgelu"):
        return True
    tag = cfg.pretrained
    if not tag or looks_like_path(tag):
        return False
    return bool(open_clip.get_pretrained_cfg(cfg.name, tag).get("quick_gelu"))


def create_model(
    cfg: ModelConfig, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Any, Any, Any]:
    """Build ``(model, preprocess_train, preprocess_val, tokenizer)`` from a :class:`ModelConfig`.

    ``cfg.pretrained`` is an open_clip tag (``"openai"``: the paper's start point) or a local
    checkpoint path (a file written by :func:`save_checkpoint_for_open_clip`, or any open_clip
    state dict); None trains from scratch. Towers are locked per ``cfg`` with open_clip's own
    ``lock_image_tower`` / ``lock_text_tower`` so the unlocked-groups semantics are theirs.
    """
    shipped = shipped_path(cfg.name, cfg.pretrained)  # a tag whose weights ship with countclip
    pretrained = _check_pretrained(str(shipped) if shipped else cfg.pretrained)
    try:
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            cfg.name,
            pretrained=pretrained,
            device=torch.device(device),
            force_quick_gelu=uses_quick_gelu(cfg),
        )
    except Exception as exc:
        if pretrained and looks_like_path(pretrained):  # torch's zip errors name no file
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"model.pretrained: {pretrained}: not a readable checkpoint of {cfg.name} ({why})"
            ) from exc
        raise
    if cfg.lock_image:
        model.lock_image_tower(unlocked_groups=cfg.lock_image_unlocked_groups)
    if cfg.lock_text:
        model.lock_text_tower(unlocked_layers=cfg.lock_text_unlocked_layers)
    tokenizer = open_clip.get_tokenizer(cfg.name)
    return model, preprocess_train, preprocess_val, tokenizer


def load_model(
    name: str,
    checkpoint: str | None,
    device: str | torch.device = "cpu",
    quick_gelu: bool | None = None,
) -> tuple[nn.Module, Any, Any]:
    """``(model in eval mode, preprocess_val, tokenizer)`` for evaluation.

    ``checkpoint`` is a path (a training output) or an open_clip tag such as ``"openai"``;
    ``quick_gelu`` as the model was trained (None: as the tag says, see :func:`uses_quick_gelu`).
    """
    cfg = ModelConfig(name=name, pretrained=checkpoint, quick_gelu=quick_gelu)
    model, _, preprocess_val, tokenizer = create_model(cfg, device=device)
    model.eval()
    return model, preprocess_val, tokenizer


class TrainForward(nn.Module):
    """What the training loop (and DDP) calls: ``(images, texts) -> (image features, text
    features, exponentiated logit scale)``, normalised, with the trimmed text encoder
    (:func:`countclip.training.encoders.encode_text`).

    DDP must see one forward through its wrapper per step, so this module *is* the forward;
    it owns no parameters besides the wrapped open_clip model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, texts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_features = self.model.encode_image(images, normalize=True)
        text_features = encode_text(self.model, texts)
        return image_features, text_features, self.model.logit_scale.exp()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare open_clip model inside DDP, :class:`TrainForward` or ``torch.compile``."""
    while True:
        if isinstance(model, TrainForward):
            model = model.model
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint_for_open_clip(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save the bare state dict (fp32, CPU, no ``module.`` prefix) atomically to ``path``.

    That is exactly what open_clip's ``load_checkpoint`` expects from ``pretrained=<path>``, so
    evaluation code and other tools load it with open_clip alone.
    """
    from countclip.atomic import atomic_path

    state = {
        k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu())
        for k, v in unwrap_model(model).state_dict().items()
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def encode_batch(
    model: nn.Module, batch: Mapping[str, Any], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward for the whole step, encoding each distinct token row once.

    ``model`` is a :class:`TrainForward` (trimmed text encoding), DDP around one, or a plain
    open_clip CLIP. Returns image features (B, D), caption features (B, D), counterfactual
    features (N, K, D) and the exponentiated logit scale.
    """
    texts, cf = batch["texts"], batch["cf_texts"]
    n, k = cf.shape[0], cf.shape[1]
    rows = torch.cat([texts, cf.reshape(n * k, -1)]) if n * k else texts
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    images = batch["images"].to(device, non_blocking=True)
    image_features, unique_features, logit_scale = model(images, unique.to(device))[:3]
    text_all = unique_features[inverse.to(device)]
    b = texts.shape[0]
    return image_features, text_all[:b], text_all[b:].view(n, k, -1), logit_scale
