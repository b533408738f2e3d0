"""Synthetic CountBenches: held-out scenes, 2..10 objects, in the real CountBench JSON format.

Two of them, drawn the same way from disjoint ids and seeds:

- ``dev``: what tuning, the docs and the demo may look at (ids from :data:`COUNTBENCH_ID_BASE`,
  rng seeded by ``world.seed``);
- ``confirmatory``: looked at only for the final numbers of a recipe fixed beforehand (ids from
  :data:`CONFIRMATORY_ID_BASE`, rng and ids seeded by ``world.confirmatory_seed``).

Real CountBench is a JSON list of ``{"image_url", "text", "number"}``; some of its URLs are dead,
and so are some here: CountBench ids misbehave on the server like any other id (``404``,
``slow``...), at ``world.misbehave_fraction``. All ids lie far above any training ``SAMPLE_ID``
and below the zero-shot ids, and the caption templates are never used in the training metadata.
Every scene's layout is cue-controlled (:mod:`countclip.synthetic.render`), so object size, total
area and spread do not give the count away; :mod:`countclip.synthetic.scene_cues` measures that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np

from countclip.atomic import atomic_write_text
from countclip.config import WorldConfig
from countclip.counts import COUNTS
from countclip.synthetic.captions import COUNTBENCH_TEMPLATES, apply_casing, fill
from countclip.synthetic.world import (
    COLOURS,
    COUNTBENCH_ID_BASE,
    NUMBER_WORDS,
    SHAPES,
    Scene,
    scene_url,
)

Split = Literal["dev", "confirmatory"]
SPLITS: tuple[Split, ...] = ("dev", "confirmatory")
SEED_ID_STRIDE = 1_000_000
"""Ids of one seed's scenes span at most this many (9 counts x ``countbench_per_count``)."""
CONFIRMATORY_ID_BASE = COUNTBENCH_ID_BASE + 100_000_000_000
"""Confirmatory ids: ``CONFIRMATORY_ID_BASE + confirmatory_seed * SEED_ID_STRIDE + index``."""
CUE_FIT_ID_BASE = COUNTBENCH_ID_BASE + 500_000_000_000
"""Scenes drawn like a CountBench's, only to fit the cue-only classifiers (never evaluated)."""


def _check_per_count(per_count: int, field: str) -> None:
    if not 1 <= per_count * len(COUNTS) <= SEED_ID_STRIDE:
        raise ValueError(
            f"{field} must be 1..{SEED_ID_STRIDE // len(COUNTS)} (scenes of one CountBench share "
            f"an id range of {SEED_ID_STRIDE}), got {per_count}"
        )


def _draw_scenes(
    first_id: int, per_count: int, rng: np.random.Generator
) -> list[tuple[Scene, str]]:
    """``per_count`` (scene, caption) pairs per count 2..10 with consecutive ids from
    ``first_id``: random kind and CountBench caption template."""
    out = []
    for i, count in enumerate(COUNTS):
        shapes = rng.integers(0, len(SHAPES), per_count)
        colours = rng.integers(0, len(COLOURS), per_count)
        templates = rng.integers(0, len(COUNTBENCH_TEMPLATES), per_count)
        for j in range(per_count):
            scene = Scene(
                first_id + i * per_count + j, count, SHAPES[shapes[j]], COLOURS[colours[j]]
            )
            text = fill(
                COUNTBENCH_TEMPLATES[templates[j]], scene.shape, scene.colour, NUMBER_WORDS[count]
            )
            out.append((scene, apply_casing(text, "capitalize")))
    return out


def countbench_scenes(world: WorldConfig, split: Split = "dev") -> list[tuple[Scene, str]]:
    """The (scene, caption) pairs of one synthetic CountBench, count by count (deterministic)."""
    per = world.countbench_per_count
    _check_per_count(per, "world.countbench_per_count")
    if split == "dev":
        return _draw_scenes(COUNTBENCH_ID_BASE, per, np.random.default_rng([world.seed, 0xC0B1]))
    if split == "confirmatory":
        seed = world.confirmatory_seed
        first = CONFIRMATORY_ID_BASE + seed * SEED_ID_STRIDE
        return _draw_scenes(first, per, np.random.default_rng([seed, 0xC0B2]))
    raise ValueError(f"CountBench split must be one of {SPLITS}, got {split!r}")


def cue_fit_scenes(world: WorldConfig, split: Split, per_count: int) -> list[Scene]:
    """Scenes drawn exactly like ``split``'s CountBench (same counts, kinds, layout process) but
    from their own ids: what a cue-only classifier is fit on before it sees the CountBench."""
    _check_per_count(per_count, "cue-fit per_count")
    if split not in SPLITS:
        raise ValueError(f"CountBench split must be one of {SPLITS}, got {split!r}")
    seed = world.seed if split == "dev" else world.confirmatory_seed
    first = CUE_FIT_ID_BASE + (2 * (seed % 100_000) + SPLITS.index(split)) * SEED_ID_STRIDE
    rng = np.random.default_rng([seed, 0xC0E5, SPLITS.index(split)])
    return [scene for scene, _ in _draw_scenes(first, per_count, rng)]


def write_countbench(
    path: str | os.PathLike[str], world: WorldConfig, base_url: str, split: Split = "dev"
) -> Path:
    """Write one synthetic CountBench JSON (``world.countbench_per_count`` per count 2..10,
    images on ``base_url``) atomically; returns the path."""
    rows = [
        {"image_url": scene_url(base_url, scene), "text": text, "number": scene.count}
        for scene, text in countbench_scenes(world, split)
    ]
    return atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
