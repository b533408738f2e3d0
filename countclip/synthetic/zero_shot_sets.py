"""The synthetic world's zero-shot check: shape, colour and joint shape x colour classification
sets, written as CLIP_benchmark webdataset folders that :mod:`countclip.evaluation.zeroshot`
reads like any other.

Counting bought by forgetting would show up here: a fine-tuned model should still tell the
world's shapes and colours apart as well as before. Each folder has two splits drawn from
disjoint scenes: ``test`` (the reported check) and ``validation`` (what tuning may look at).
Shape (8 classes) and colour (8) alone are near-saturated for a model of this world, so a small
loss hides there; ``shape_colour`` (64 classes such as "red stars") needs both attributes bound
to one object and is not.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from countclip.synthetic.world import COLOURS, PLURALS, SHAPES

ZERO_SHOT_ID_BASE = 2_000_000_000_000
"""Zero-shot scenes use ids far above training (0..rows) and CountBench (10**12 + ...)."""

TEST_SEED = 0
"""The evaluation stage's zero-shot scenes (the reported check)."""
VALIDATION_SEED = 1
"""Other scenes of the same tasks, for tuning: a recipe that keeps zero-shot is chosen on these,
never on the reported check's."""

SHAPE_TEMPLATES: tuple[str, ...] = (
    "a photo of {c}.",
    "a set of {c}.",
    "{c} vector icon.",
    "a drawing of {c}.",
)
COLOUR_TEMPLATES: tuple[str, ...] = (
    "a photo of {c} shapes.",
    "a set of {c} objects.",
    "{c} vector icon.",
    "a drawing of {c} things.",
)
KIND_TEMPLATES: tuple[str, ...] = (
    "a photo of {c}.",
    "a set of {c}.",
    "{c} vector icons.",
    "a drawing of {c}.",
)
TASKS: tuple[str, ...] = ("shape", "colour", "shape_colour")
_TASK_OFFSETS = {"shape": 0, "colour": 1, "shape_colour": 2}  # id blocks of the tasks
SPLIT_SEEDS: dict[str, int] = {"test": TEST_SEED, "validation": VALIDATION_SEED}


def synthetic_task(task: str) -> tuple[list[str], list[str], tuple[str, ...]]:
    """``(class names used in prompts, class keys, templates)`` of a synthetic task."""

    if task == "shape":
        return [PLURALS[s] for s in SHAPES], list(SHAPES), SHAPE_TEMPLATES
    if task == "colour":
        return list(COLOURS), list(COLOURS), COLOUR_TEMPLATES
    if task == "shape_colour":
        kinds = [(s, c) for s in SHAPES for c in COLOURS]
        return (
            [f"{c} {PLURALS[s]}" for s, c in kinds],
            [f"{s}/{c}" for s, c in kinds],
            (KIND_TEMPLATES),
        )
    raise ValueError(f"zero-shot task must be one of {TASKS}, got {task!r}")


def synthetic_samples(
    task: str, per_class: int, image_size: int = 64, seed: int = TEST_SEED
) -> Iterator[tuple[Any, int]]:
    """``(PIL image, class index)`` pairs of a synthetic task, deterministic in ``seed``.

    Counts are drawn from 1..6 so the check is about kind, not number; in the shape and colour
    tasks the other attribute is random so the classifier cannot lean on it.
    """
    from countclip.synthetic import Scene, render_scene

    _, keys, _ = synthetic_task(task)
    rng = random.Random(f"zero-shot/{task}/{seed}")
    offset = _TASK_OFFSETS[task]
    if per_class * len(keys) > 100_000:
        raise ValueError(f"zero-shot per_class must be <= {100_000 // len(keys)} for {task!r}")
    for i in range(per_class * len(keys)):
        label = i % len(keys)
        shape = keys[label] if task == "shape" else rng.choice(SHAPES)
        colour = keys[label] if task == "colour" else rng.choice(COLOURS)
        if task == "shape_colour":
            shape, colour = keys[label].split("/")
        scene = Scene(
            ZERO_SHOT_ID_BASE + 10_000_000 * offset + 100_000 * seed + i,
            rng.randint(1, 6),
            shape,
            colour,
        )
        yield render_scene(scene, image_size), label


def write_clip_benchmark_folder(
    folder: str | os.PathLike[str],
    task: str = "shape",
    per_class: int = 20,
    image_size: int = 64,
    seed: int = TEST_SEED,
    split: str = "test",
) -> Path:
    """Write a synthetic task as a CLIP_benchmark webdataset folder (what
    ``clip_benchmark.webdataset_builder.convert_dataset`` produces) and return the folder."""
    import webdataset as wds

    folder = Path(folder)
    (folder / split).mkdir(parents=True, exist_ok=True)
    names, _, templates = synthetic_task(task)
    (folder / "classnames.txt").write_text("\n".join(names) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    with wds.TarWriter(str(folder / split / "0.tar")) as sink:
        for index, (image, label) in enumerate(
            synthetic_samples(task, per_class, image_size, seed)
        ):
            buffer = io.BytesIO()
            image.save(buffer, format="png")
            sink.write({"__key__": f"s{index:07d}", "png": buffer.getvalue(), "cls": label})
    (folder / split / "nshards.txt").write_text("1\n")
    return folder


def write_zero_shot_sets(
    folder: str | os.PathLike[str], per_class: int, image_size: int
) -> dict[str, str]:
    """Every synthetic task as a CLIP_benchmark folder under ``folder`` (both splits);
    returns ``{task: folder}`` for ``EvalConfig.zero_shot_datasets``."""
    out: dict[str, str] = {}
    for task in TASKS:
        for split, seed in SPLIT_SEEDS.items():
            write_clip_benchmark_folder(
                Path(folder) / task, task, per_class, image_size, seed, split
            )
        out[task] = str((Path(folder) / task).resolve())
    return out
