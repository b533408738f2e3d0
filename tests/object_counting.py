"""Counting the objects the synthetic renderer drew, from pixels alone (shared by the renderer's
and the augmentation's tests): the ground truth a counting test checks an image against."""

from __future__ import annotations

import numpy as np
from PIL import Image

from countclip.synthetic.render import RGB


def components(mask: np.ndarray, min_pixels: int = 12) -> int:
    """Connected components (4-neighbour) of a boolean mask, by min-label propagation."""
    h, w = mask.shape
    big = h * w + 1
    labels = np.where(mask, np.arange(h * w).reshape(h, w), big)
    while True:
        padded = np.pad(labels, 1, constant_values=big)
        neighbours = np.minimum.reduce(
            [
                labels,
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            ]
        )
        new = np.where(mask, neighbours, big)
        if np.array_equal(new, labels):
            break
        labels = new
    _, sizes = np.unique(labels[mask], return_counts=True)
    return int((sizes >= min_pixels).sum())


def object_mask(img: Image.Image | np.ndarray, colour: str) -> np.ndarray:
    """Pixels within 40 (RGB distance) of the renderer's ``colour`` (objects get ±12 jitter)."""
    arr = np.asarray(img, dtype=np.int32)
    return np.sqrt(((arr - np.array(RGB[colour])) ** 2).sum(-1)) < 40
