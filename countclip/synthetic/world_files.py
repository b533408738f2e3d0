"""Every file of a synthetic world, written into one directory: what the world stage holds.

The metadata parquet parts (LAION-400M schema, image URLs under ``base_url``), the three
CountBenches (dev, dev2, confirmatory) in the real JSON format, their cue-only baselines, the
zero-shot sets, and the ground truth (what each image really shows: only the world itself and
measurements of the pipeline read it).
"""

from __future__ import annotations

import json
from pathlib import Path

from countclip.atomic import atomic_write_json
from countclip.config import WorldConfig
from countclip.synthetic.bench_scenes import SPLITS, Split, write_countbench
from countclip.synthetic.ground_truth import write_ground_truth
from countclip.synthetic.laion_metadata import generate_metadata
from countclip.synthetic.scene_cues import write_cue_report
from countclip.synthetic.zero_shot_sets import write_zero_shot_sets


def countbench_output(split: Split) -> str:
    """The world manifest's output naming the ``split`` CountBench: ``countbench`` (dev),
    ``countbench_dev2``, ``countbench_confirmatory``."""
    return "countbench" if split == "dev" else f"countbench_{split}"


def countbench_file(split: Split) -> str:
    return "countbench.json" if split == "dev" else f"countbench-{split}.json"


def write_world(world: WorldConfig, work: Path, base_url: str) -> tuple[dict, dict]:
    """Write the world's files into ``work``; return ``(outputs, stats)``."""
    parts = generate_metadata(work / "metadata", world, base_url)
    for split in SPLITS:
        write_countbench(work / countbench_file(split), world, base_url, split)
    cues = json.loads(write_cue_report(work / "cues.json", world).read_text())
    for split in SPLITS:
        atomic_write_json(work / f"cues-{split}.json", cues[split])
    write_ground_truth(work / "ground_truth.parquet", world)
    datasets = write_zero_shot_sets(
        work / "zero-shot", world.zero_shot_per_class, world.zero_shot_image_size
    )
    outputs = {
        "metadata": work / "metadata",
        **{countbench_output(split): work / countbench_file(split) for split in SPLITS},
        "cues": work / "cues.json",
        **{f"cues_{split}": work / f"cues-{split}.json" for split in SPLITS},
        "ground_truth": work / "ground_truth.parquet",
        "zero_shot": work / "zero-shot",
    }
    stats = {"parts": len(parts), "base_url": base_url, "zero_shot_tasks": sorted(datasets)}
    return outputs, stats
