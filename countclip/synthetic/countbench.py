"""A synthetic CountBench: held-out scenes, 2..10 objects, in the real CountBench JSON format.

Real CountBench is a JSON list of ``{"image_url", "text", "number"}``; some of its URLs are dead,
and so are some here: CountBench ids misbehave on the server like any other id (``404``,
``slow``...), at ``world.misbehave_fraction``. Ids start at :data:`COUNTBENCH_ID_BASE`, far
above any training ``SAMPLE_ID``, and the caption templates are never used in the training
metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def countbench_scenes(world: WorldConfig) -> list[tuple[Scene, str]]:
    """The (scene, caption) pairs of the synthetic CountBench, count by count (deterministic)."""
    rng = np.random.default_rng([world.seed, 0xC0B1])
    per = world.countbench_per_count
    out = []
    for i, count in enumerate(COUNTS):
        shapes = rng.integers(0, len(SHAPES), per)
        colours = rng.integers(0, len(COLOURS), per)
        templates = rng.integers(0, len(COUNTBENCH_TEMPLATES), per)
        for j in range(per):
            scene = Scene(
                COUNTBENCH_ID_BASE + i * per + j,
                count,
                SHAPES[shapes[j]],
                COLOURS[colours[j]],
            )
            text = fill(
                COUNTBENCH_TEMPLATES[templates[j]], scene.shape, scene.colour, NUMBER_WORDS[count]
            )
            out.append((scene, apply_casing(text, "capitalize")))
    return out


def write_countbench(path: str | os.PathLike[str], world: WorldConfig, base_url: str) -> Path:
    """Write the synthetic CountBench JSON (``world.countbench_per_count`` per count 2..10,
    images on ``base_url``) atomically; returns the path."""
    rows = [
        {"image_url": scene_url(base_url, scene), "text": text, "number": scene.count}
        for scene, text in countbench_scenes(world)
    ]
    return atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
