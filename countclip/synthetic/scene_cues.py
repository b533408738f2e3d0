"""Non-numerical cues of synthetic scenes, and the cue-only baselines of a CountBench.

Each scene's cues are read off its layout (:func:`countclip.synthetic.render.layout_scene`) and
the drawn outline of its shape, in fractions of the image side:

- ``largest item``: drawn area of the biggest object;
- ``mean item``: mean drawn area of the objects;
- ``total area``: total foreground (object) area;
- ``hull area``: area of the convex hull of every object outline;
- ``spread``: root-mean-square distance of the object centres from their centroid.

:func:`countbench_cue_predictions` fits :func:`countclip.evaluation.cues.cue_predictions` on
scenes drawn like a CountBench (:func:`countclip.synthetic.bench_scenes.cue_fit_scenes`, their own
ids) and guesses the count of each of the CountBench's own scenes; the accuracies, and which
images no single cue gets right, follow from those guesses.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull

from countclip.atomic import atomic_write_text
from countclip.config import WorldConfig
from countclip.counts import COUNTS
from countclip.evaluation.cues import cue_accuracies, cue_predictions
from countclip.synthetic.bench_scenes import SPLITS, Split, countbench_scenes, cue_fit_scenes
from countclip.synthetic.layout import SHAPE_AREA, layout_scene, object_outline
from countclip.synthetic.world import Scene

CUES: tuple[str, ...] = ("largest item", "mean item", "total area", "hull area", "spread")
CUE_FIT_PER_COUNT = 200
"""Scenes per count the cue-only classifiers are fit on (a CountBench has 60)..."""
CUE_FIT_PER_BENCH_SCENE = 8
"""...or 8 for each of the CountBench's scenes per count when that is fewer (a toy CountBench
of 4 per count gets 32: its own accuracies are that coarse, and fitting costs ~0.7 ms a
scene)."""


def cue_fit_per_count(world: WorldConfig) -> int:
    """Scenes per count the cue-only classifiers of ``world``'s CountBenches are fit on."""
    return min(CUE_FIT_PER_COUNT, CUE_FIT_PER_BENCH_SCENE * world.countbench_per_count)


def scene_cues(scene: Scene) -> dict[str, float]:
    """The non-numerical cues of one counting scene (count >= 1), see the module docstring."""
    if scene.count < 1:
        raise ValueError(f"scene_cues: scene {scene.sample_id} is a pattern (count 0), not counted")
    placements = layout_scene(scene)
    areas = np.array([SHAPE_AREA[scene.shape] * p.radius**2 for p in placements])
    outline = np.concatenate([object_outline(scene.shape, p) for p in placements])
    centres = np.array([(p.x, p.y) for p in placements])
    spread = math.sqrt(((centres - centres.mean(0)) ** 2).sum(1).mean())
    return {
        "largest item": float(areas.max()),
        "mean item": float(areas.mean()),
        "total area": float(areas.sum()),
        "hull area": float(ConvexHull(outline).volume),  # a 2-D hull's "volume" is its area
        "spread": spread,  # 0 for a single object
    }


def cue_rows(scenes: Iterable[Scene]) -> list[dict[str, Any]]:
    """One row per scene: ``sample_id``, ``count`` and every cue of :data:`CUES`."""
    return [{"sample_id": s.sample_id, "count": s.count, **scene_cues(s)} for s in scenes]


def countbench_cue_predictions(
    world: WorldConfig, split: Split = "dev", fit_per_count: int | None = None
) -> dict[str, Any]:
    """What each cue-only classifier guesses for every scene of the ``split`` CountBench, in its
    row order (row i is the CountBench's ``SAMPLE_ID`` i): ``{"true": [count per row],
    "predicted": {cue: [count per row]}}``; classifiers fit on ``fit_per_count`` other scenes per
    count (:func:`cue_fit_per_count` unless given)."""
    test = cue_rows(scene for scene, _ in countbench_scenes(world, split))
    fit = cue_rows(cue_fit_scenes(world, split, fit_per_count or cue_fit_per_count(world)))
    predicted = cue_predictions(fit, [r["count"] for r in fit], test, cues=CUES)
    return {"true": [r["count"] for r in test], "predicted": predicted}


def cue_report(world: WorldConfig, fit_per_count: int | None = None) -> dict[str, Any]:
    """The cue-only baselines of every CountBench: ``{"chance": 1/9, "cues": [...],
    "dev": {cue: accuracy}, "dev2": {...}, "confirmatory": {...}, "scenes": {split: per-scene
    guesses}}`` (the guesses as :func:`countbench_cue_predictions` returns them), the rows a
    benchmark prints beside the models."""
    report: dict[str, Any] = {"chance": 1 / len(COUNTS), "cues": list(CUES), "scenes": {}}
    for split in SPLITS:
        scenes = countbench_cue_predictions(world, split, fit_per_count)
        report[split] = cue_accuracies(scenes["predicted"], scenes["true"])
        report["scenes"][split] = scenes
    return report


def write_cue_report(
    path: str | os.PathLike[str], world: WorldConfig, fit_per_count: int | None = None
) -> Path:
    """Write :func:`cue_report` as JSON (atomically); returns the path."""
    return atomic_write_text(path, json.dumps(cue_report(world, fit_per_count)) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m countclip.synthetic.scene_cues --config CONFIG OUT``: the cue report of a
    config's world, without building anything else (a function of the world's settings alone)."""
    import argparse

    from countclip.yamlconfig import load_config

    parser = argparse.ArgumentParser(
        prog="python -m countclip.synthetic.scene_cues", description=main.__doc__
    )
    parser.add_argument("--config", required=True, help="a pipeline YAML (its world is used)")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    world = load_config(args.config).world
    report = {
        "config": args.config,
        "world": world.model_dump(mode="json"),
        **cue_report(world),
    }
    path = atomic_write_text(args.out, json.dumps(report) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
