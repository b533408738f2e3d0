"""Would a finer image remove the convex-hull cue? The single-cue baselines of both CountBenches
with the layout's object scale set to what 128 px and 256 px images would allow.

At the 64 px the tiny model trains on, an object is at least 0.13 of the image side (~8 px) and
ten of them cannot make a thin hull, so the hull area alone guesses the count above chance + 5
(docs/protocol.md). The same 8 px is 0.065 of a 128 px side and 0.033 of a 256 px one. Each
variant below sets the layout constants of :mod:`countclip.synthetic.layout` (restored after)
and recomputes :func:`countclip.synthetic.scene_cues.cue_report` on the world of ``--config``: no
model and no image, the layouts alone, so the whole table takes seconds. Every variant tried is
listed, none is chosen, and the shipped world is unchanged.

    .venv/bin/python -m countclip_experiments.cue_scale  # -> results/cues/object-scale.json
    .venv/bin/python scripts/render_results.py           # docs/results.md renders it
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import countclip.synthetic.layout as layout
from countclip.atomic import atomic_write_text
from countclip.synthetic.scene_cues import cue_report
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("64 px, as shipped", {}),
    ("128 px", {"MIN_DIAMETER": 0.065}),
    (
        "128 px, hull 0.03-0.4, spread 0.11-0.42",
        {"MIN_DIAMETER": 0.065, "HULL_RANGE": (0.03, 0.4), "SPREAD_RANGE": (0.11, 0.42)},
    ),
    (
        "128 px, hull only (0.03-0.4)",
        {"MIN_DIAMETER": 0.065, "SPREAD_SHARE": 0.0, "HULL_RANGE": (0.03, 0.4)},
    ),
    (
        "128 px, sizes to 0.14, hull 0.03-0.3, spread 0.11-0.42",
        {
            "MIN_DIAMETER": 0.065,
            "FIT_ALL_DIAMETER": 0.14,
            "HULL_RANGE": (0.03, 0.3),
            "SPREAD_RANGE": (0.11, 0.42),
        },
    ),
    (
        "128 px, sizes to 0.14, hull only (0.03-0.3)",
        {
            "MIN_DIAMETER": 0.065,
            "FIT_ALL_DIAMETER": 0.14,
            "SPREAD_SHARE": 0.0,
            "HULL_RANGE": (0.03, 0.3),
        },
    ),
    (
        "96 px, hull 0.05-0.4, spread 0.15-0.42",
        {"MIN_DIAMETER": 0.087, "HULL_RANGE": (0.05, 0.4), "SPREAD_RANGE": (0.15, 0.42)},
    ),
    (
        "256 px, sizes to 0.14, gap 0.015, hull 0.02-0.3, spread 0.06-0.42",
        {
            "MIN_DIAMETER": 0.033,
            "FIT_ALL_DIAMETER": 0.14,
            "GAP": 0.015,
            "HULL_RANGE": (0.02, 0.3),
            "SPREAD_RANGE": (0.06, 0.42),
        },
    ),
    (
        "256 px, sizes to 0.14, gap 0.015, hull only (0.02-0.3)",
        {
            "MIN_DIAMETER": 0.033,
            "FIT_ALL_DIAMETER": 0.14,
            "GAP": 0.015,
            "SPREAD_SHARE": 0.0,
            "HULL_RANGE": (0.02, 0.3),
        },
    ),
]
"""(name, layout constants): the image side a variant's smallest object (~8 px) stands for, and
what else it changes."""


@contextlib.contextmanager
def layout_constants(**constants: Any) -> Iterator[None]:
    """Set module constants of :mod:`countclip.synthetic.layout` for the block, then restore
    them (a name the module does not define is an error, not a silent new attribute)."""
    unknown = [name for name in constants if not hasattr(layout, name)]
    if unknown:
        raise AttributeError(f"countclip.synthetic.layout has no constant {unknown}")
    saved = {name: getattr(layout, name) for name in constants}
    try:
        for name, value in constants.items():
            setattr(layout, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(layout, name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m countclip_experiments.cue_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "cues" / "object-scale.json")
    args = parser.parse_args(argv)
    world = load_config(args.config).world
    rows = []
    for name, constants in VARIANTS:
        with layout_constants(**constants):
            report = cue_report(world)
        # The development CountBenches only: the confirmatory one is read by registered runs.
        splits = {split: report[split] for split in ("dev", "dev2")}
        rows.append({"variant": name, "layout": constants, "chance": report["chance"], **splits})
        hull = ", ".join(f"{k} {v['hull area']:.1%}" for k, v in splits.items())
        print(f"{name}: hull area {hull}", flush=True)
    record = {"config": args.config, "world_seed": world.seed, "variants": rows}
    print(f"wrote {atomic_write_text(args.out, json.dumps(record) + chr(10))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
