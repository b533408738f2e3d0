"""Training-time image augmentation that never changes how many objects an image shows.

open_clip's training transform is a ``RandomResizedCrop`` (area 0.9..1, aspect 3/4..4/3) of one
fixed pose. The alternative here shows the *whole* image (the evaluation transform) after a
random symmetry of the square: a horizontal flip, or any of the eight flips/rotations (the
dihedral group). Every object stays in the picture, so the count — and with it the caption and
all eight counterfactuals — stays true, and the rare counts (a few dozen images of "ten" in a
LAION-like slice) are seen in up to eight poses instead of one.

Measured, so the default stays open_clip's: on the synthetic world the crop never drops an
object (the renderer keeps a margin; tests/test_augment.py checks 200 crops of ten-object
images), and on the benchmark world's counting validation split (benchmarks/tune_counting.py,
seed 0, 400 steps) ``dihedral`` raised the control (balanced accuracy 0.36 -> 0.41) and lowered
CountCLIP (0.60 -> 0.49). ``flip`` is the choice for real photos, where rotations are unnatural.

Randomness comes from torch's global generator, which the training dataset seeds per
``(seed, step, rank)`` (:func:`countclip.training.runtime.seeded_global_rng`), so batches stay a
pure function of the step and resume stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from PIL import Image

from countclip.config import Augment

# The eight symmetries of a square as PIL transposes (None = identity); "flip" uses the first two.
_SYMMETRIES: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)


class CountPreservingAugment:
    """A random symmetry (``flip``: identity or mirror; ``dihedral``: one of eight), then
    ``whole_image`` — a transform that keeps the full frame (open_clip's eval preprocess)."""

    def __init__(
        self, whole_image: Callable[[Image.Image], torch.Tensor], mode: Literal["flip", "dihedral"]
    ) -> None:
        if mode not in ("flip", "dihedral"):
            raise ValueError(f"train.augment: want 'flip' or 'dihedral', got {mode!r}")
        self.whole_image = whole_image
        self.mode = mode
        self.choices = 2 if mode == "flip" else len(_SYMMETRIES)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pick = _SYMMETRIES[int(torch.randint(self.choices, ()).item())]
        return self.whole_image(image if pick is None else image.transpose(pick))

    def __repr__(self) -> str:
        return f"CountPreservingAugment(mode={self.mode!r}, then={self.whole_image!r})"


def training_transform(
    augment: Augment,
    preprocess_train: Callable[[Image.Image], torch.Tensor],
    preprocess_val: Callable[[Image.Image], torch.Tensor],
) -> Callable[[Image.Image], torch.Tensor]:
    """The transform training batches use: open_clip's own (``"open_clip"``, the paper's), or a
    count-preserving symmetry followed by the whole-image evaluation transform."""
    if augment == "open_clip":
        return preprocess_train
    return CountPreservingAugment(preprocess_val, augment)
