"""torchvision's COCO detectors as object counters (real photographs).

The reproduction verified LAION counting pairs with YOLOv8n (ultralytics). Ultralytics is
AGPL-3.0: depending on it would put this MIT project under the AGPL's network clause, so it is
not used. torchvision's detectors (BSD-3-Clause code; COCO-trained weights) do the same job:
Faster R-CNN, RetinaNet and SSDlite, counted per COCO class above a score threshold.

Weights are never downloaded (the pipeline runs offline): they come from a local state dict
(``VerifyConfig.weights``) or from torchvision's own cache (``$TORCH_HOME/hub/checkpoints/``,
where ``torchvision.models.get_weight(...).get_state_dict()`` leaves them on a connected
machine). When neither has them, :func:`weights_file` raises one error naming the file.
``weights: "random"`` builds an untrained detector: it exercises batching, devices and the
stage's plumbing in tests, and its counts mean nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch
import torchvision.models as tv_models  # a module import: see the note below

from countclip.data.verify.counters import Counts
from countclip.devices import resolve_device

RANDOM_WEIGHTS = "random"
# ``import torchvision.models as tv_models``, not ``from torchvision.models import ...``: the
# stage's code version (countclip.fingerprints) resolves every ``from X import name`` to a file,
# and for a name that is no submodule that imports X, so torchvision (~5 s) on every plan.


class DetectorWeightsMissing(FileNotFoundError):
    """The detector's weights file is not on this machine (and will not be downloaded)."""


def cache_file(detector: str) -> Path:
    """Where torchvision keeps ``detector``'s default COCO weights once downloaded."""
    url = tv_models.get_model_weights(detector).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlsplit(url).path).name


def weights_file(detector: str, weights: str | None) -> Path | None:
    """The state dict to load for ``detector`` (None for untrained ``"random"`` weights);
    :class:`DetectorWeightsMissing` naming the file when it is absent."""
    if weights == RANDOM_WEIGHTS:
        return None
    path = Path(weights).expanduser() if weights else cache_file(detector)
    if not path.is_file():
        origin = "verify.weights" if weights else "torchvision's cache (verify.weights unset)"
        raise DetectorWeightsMissing(
            f"{path}: no weights file for the {detector} detector ({origin}). Nothing is "
            f"downloaded here: copy the file there from a machine where torchvision has it "
            f"(torchvision.models.get_weight('{tv_models.get_model_weights(detector).DEFAULT}')"
            ".get_state_dict() fetches it), or set verify.weights to a local .pth state dict"
        )
    return path


def _load_state(model: torch.nn.Module, path: Path, detector: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise ValueError(f"{path}: not weights of the {detector} detector ({exc})") from exc
    # torchvision's trained checkpoints use frozen batch norms, which keep no batch counter
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: not weights of the {detector} detector (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )


class TorchvisionCounter:
    """Detections per COCO class with score >= ``score_threshold``, in batches."""

    name = "torchvision"

    def __init__(
        self,
        detector: str,
        *,
        weights: str | None = None,
        score_threshold: float = 0.5,
        batch_size: int = 8,
        device: str = "auto",
        min_size: int | None = None,
    ) -> None:
        path = weights_file(detector, weights)  # the clear error before anything is built
        self.categories: list[str] = list(
            tv_models.get_model_weights(detector).DEFAULT.meta["categories"]
        )
        if min_size is not None and detector.startswith("ssdlite"):
            raise ValueError(f"verify.min_size: {detector} has a fixed input size; leave it unset")
        sizes = {} if min_size is None else {"min_size": min_size, "max_size": 2 * min_size}
        model = tv_models.get_model(
            detector,
            weights=None,
            weights_backbone=None,
            num_classes=len(self.categories),
            **sizes,
        )
        if path is not None:
            _load_state(model, path, detector)
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.detector = detector
        self.score_threshold = score_threshold
        self.batch_size = batch_size

    def count(self, images: Sequence[np.ndarray]) -> list[Counts]:
        out: list[Counts] = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                torch.tensor(image, dtype=torch.uint8, device=self.device)
                .permute(2, 0, 1)
                .float()
                .div_(255)
                for image in images[start : start + self.batch_size]
            ]
            with torch.inference_mode():
                detections = self.model(batch)
            for found in detections:
                labels = found["labels"][found["scores"] >= self.score_threshold].tolist()
                out.append(dict(Counter(self.categories[label] for label in labels)))
        return out
