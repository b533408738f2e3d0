"""Synthetic CountBenches: held-out scenes, 2..10 objects, in the real CountBench JSON format.

Three of them, drawn the same way from disjoint ids and seeds:

- ``dev``: what tuning, the docs and the demo may look at (ids from :data:`COUNTBENCH_ID_BASE`,
  rng seeded by ``world.seed``);
- ``dev2``: a second development set (ids from :data:`DEV2_ID_BASE`, rng and ids seeded by
  ``world.dev2_seed``). It was the confirmatory CountBench until it had served five
  experiments, one of them designed after its numbers were seen; its scenes are unchanged;
- ``confirmatory``: looked at only for the final numbers of a recipe fixed and registered
  beforehand (ids from :data:`CONFIRMATORY_ID_BASE`, rng and ids seeded by
  ``world.confirmatory_seed``; an id range and an rng stream no earlier CountBench used).

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

Split = Literal["dev", "dev2", "confirmatory"]
SPLITS: tuple[Split, ...] = ("dev", "dev2", "confirmatory")
SEED_ID_STRIDE = 1_000_000
"""Ids of one seed's scenes span at most this many (9 counts x ``countbench_per_count``)."""
DEV2_ID_BASE = COUNTBENCH_ID_BASE + 100_000_000_000
"""dev2 ids: ``DEV2_ID_BASE + dev2_seed * SEED_ID_STRIDE + index`` (the former confirmatory
CountBench's ids, unchanged)."""
CONFIRMATORY_ID_BASE = COUNTBENCH_ID_BASE + 300_000_000_000
"""Confirmatory ids: ``CONFIRMATORY_ID_BASE + confirmatory_seed * SEED_ID_STRIDE + index``."""
CUE_FIT_ID_BASE = COUNTBENCH_ID_BASE + 500_000_000_000
"""Scenes drawn like the dev and dev2 CountBenches, only to fit the cue-only classifiers (never
evaluated)."""
CONFIRMATORY_CUE_FIT_ID_BASE = COUNTBENCH_ID_BASE + 400_000_000_000
"""The same for the confirmatory CountBench, in a range of its own."""
_RNG_TAGS = {"dev": 0xC0B1, "dev2": 0xC0B2, "confirmatory": 0xC0B3}
"""Each CountBench's rng stream (dev2 keeps the tag it had as the confirmatory CountBench)."""


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
        first = COUNTBENCH_ID_BASE
    elif split == "dev2":
        first = DEV2_ID_BASE + world.dev2_seed * SEED_ID_STRIDE
    elif split == "confirmatory":
        first = CONFIRMATORY_ID_BASE + world.confirmatory_seed * SEED_ID_STRIDE
    else:
        raise ValueError(f"CountBench split must be one of {SPLITS}, got {split!r}")
    return _draw_scenes(
        first, per, np.random.default_rng([split_seed(world, split), _RNG_TAGS[split]])
    )


def split_seed(world: WorldConfig, split: Split) -> int:
    """The seed that draws the ``split`` CountBench (and its cue-fit scenes)."""
    return {"dev": world.seed, "dev2": world.dev2_seed, "confirmatory": world.confirmatory_seed}[
        split
    ]


def cue_fit_scenes(world: WorldConfig, split: Split, per_count: int) -> list[Scene]:
    """Scenes drawn exactly like ``split``'s CountBench (same counts, kinds, layout process) but
    from their own ids: what a cue-only classifier is fit on before it sees the CountBench."""
    _check_per_count(per_count, "cue-fit per_count")
    if split not in SPLITS:
        raise ValueError(f"CountBench split must be one of {SPLITS}, got {split!r}")
    seed = split_seed(world, split)
    if split == "confirmatory":
        first = CONFIRMATORY_CUE_FIT_ID_BASE + seed * SEED_ID_STRIDE
    else:  # dev 0, dev2 1: the ids and draws they had before the confirmatory CountBench was new
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
