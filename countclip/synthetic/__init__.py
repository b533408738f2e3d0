"""The offline synthetic LAION world every test and the demo use.

- :func:`render_scene`: a :class:`Scene` (id, count 1..10 or 0 = non-counting pattern, shape,
  colour) -> a deterministic RGB image;
- :func:`generate_metadata`: LAION-400M-schema parquet parts with LAION-like captions (counting,
  distractor, plain; some counting captions noisy) with opaque image URLs;
- :func:`world_truth` / :func:`write_ground_truth`: what each image really shows, kept out of
  the metadata;
- :class:`ImageServer`: a loopback HTTP server that renders those URLs and misbehaves on purpose;
- :func:`write_countbench`: a held-out CountBench in the real JSON format.
"""

from countclip.synthetic.bench_scenes import countbench_scenes, write_countbench
from countclip.synthetic.ground_truth import world_truth, write_ground_truth
from countclip.synthetic.image_server import MISBEHAVIOURS, ImageServer, misbehaviour_for
from countclip.synthetic.laion_metadata import LAION_SCHEMA, generate_metadata, row_kinds
from countclip.synthetic.render import layout_scene, render_sample, render_scene
from countclip.synthetic.world import (
    COLOURS,
    COUNTBENCH_ID_BASE,
    NUMBER_WORDS,
    SHAPES,
    Scene,
    parse_scene_url,
    scene_for_id,
    scene_url,
)

__all__ = [
    "COLOURS",
    "COUNTBENCH_ID_BASE",
    "LAION_SCHEMA",
    "MISBEHAVIOURS",
    "NUMBER_WORDS",
    "SHAPES",
    "ImageServer",
    "Scene",
    "countbench_scenes",
    "generate_metadata",
    "layout_scene",
    "misbehaviour_for",
    "parse_scene_url",
    "render_sample",
    "render_scene",
    "row_kinds",
    "scene_for_id",
    "scene_url",
    "world_truth",
    "write_countbench",
    "write_ground_truth",
]
