"""A classical object counter: foreground segmentation and connected components.

For images of a few flat objects on a textured background (the synthetic world; product shots
on a plain backdrop): the background colour is the median of the image border, the foreground
is every pixel farther from it than Otsu's threshold on that distance (never below
``min_contrast``, so a plain background with no object yields nothing rather than its own
texture). Objects are then cut at ``core`` of the way from that threshold to the foreground's
median distance: after a downscale and JPEG, the one-pixel gap between two nearby objects is a
blend of object and background that Otsu's cut keeps, and a cut halfway to the objects'
typical contrast separates them (at 32 px: 96.8% -> 99.9% of rendered scenes counted right)
while every object keeps its core. Each connected component of that (4-neighbour,
:func:`scipy.ndimage.label`) larger than ``min_object_fraction`` of the image is an object;
objects are grouped into kinds by their mean colour.

Like any detector it is imperfect: objects that touch after downscaling merge into one
component, an object that touches the border skews the background estimate, and a cluttered
photograph defeats it entirely (use :mod:`countclip.data.verify.detector` there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from countclip.data.verify.counters import Counts

_FOUR = None  # scipy default: 4-neighbour (8 merges objects that nearly touch diagonally)


class ClassicalCounter:
    """Counts flat objects on a background; see the module docstring."""

    name = "classical"

    def __init__(
        self,
        min_object_fraction: float = 0.002,
        min_contrast: float = 45.0,
        core: float = 0.5,
        kind_distance: float = 60.0,
    ) -> None:
        self.min_object_fraction = min_object_fraction
        self.min_contrast = min_contrast
        self.core = core
        self.kind_distance = kind_distance

    def count(self, images: Sequence[np.ndarray]) -> list[Counts]:
        return [self.count_one(image) for image in images]

    def count_one(self, image: np.ndarray) -> Counts:
        pixels = np.asarray(image, dtype=np.float32)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"classical counter: want an H x W x 3 image, got {pixels.shape}")
        height, width, _ = pixels.shape
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=-1)
        if float(distance.max()) <= self.min_contrast:
            return {}
        threshold = max(float(threshold_otsu(distance)), self.min_contrast)
        above = distance[distance > threshold]
        if above.size == 0:
            return {}
        typical = float(np.median(above))
        objects = distance > threshold + self.core * (typical - threshold)
        labels, n = ndimage.label(objects, structure=_FOUR)
        if n == 0:
            return {}
        flat = labels.ravel()
        sizes = np.bincount(flat, minlength=n + 1)[1:]
        found = np.flatnonzero(sizes >= max(2.0, self.min_object_fraction * height * width)) + 1
        sums = [np.bincount(flat, pixels[..., c].ravel(), n + 1)[found] for c in range(3)]
        colours = np.stack(sums, axis=-1) / sizes[found - 1, None]
        return self._kinds(colours)

    def _kinds(self, colours: np.ndarray) -> Counts:
        """Group object colours greedily: an object joins the first kind whose colour is within
        ``kind_distance``, else starts a kind (named by its colour, ``#rrggbb``)."""
        centres: list[np.ndarray] = []
        counts: Counts = {}
        names: list[str] = []
        for colour in colours:
            near = [
                i for i, c in enumerate(centres) if np.linalg.norm(c - colour) < self.kind_distance
            ]
            if near:
                counts[names[near[0]]] += 1
                continue
            centres.append(colour)
            names.append("#{:02x}{:02x}{:02x}".format(*np.clip(colour, 0, 255).astype(int)))
            counts[names[-1]] = 1
        return counts
