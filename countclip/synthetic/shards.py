"""Ready-made training shards, in img2dataset's webdataset layout, without a server or a
download: the fast fixture for the data loader, training tests and ``benchmarks/bench_train.py``."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from countclip.counts import COUNTS
from countclip.synthetic.render import render_scene
from countclip.synthetic.world import COLOURS, NUMBER_WORDS, SHAPES, Scene

_TEMPLATES = (
    "Set of {n} {colour} {shapes} vector icon",
    "{N} {colour} {shapes} on a textured background",
    "a picture of {n} {shapes}, {colour}",
)


def write_synthetic_shards(
    out_dir: str | os.PathLike[str],
    n_counting: int,
    n_common: int,
    *,
    size: int = 64,
    seed: int = 0,
    per_shard: int = 100,
    counts: Sequence[int] = COUNTS,
) -> tuple[list[str], list[str]]:
    """img2dataset-shaped shards (``.jpg``/``.txt``/``.json``) for tests, benchmarks and demos,
    written with ``webdataset.ShardWriter``: counting shards carry SAMPLE_ID, count,
    number_start, number_end, number_word; common shards SAMPLE_ID only. Images come from the
    synthetic renderer (``count`` objects of one shape/colour; common = a pattern scene).
    """
    import webdataset as wds

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: dict[str, list[str]] = {"counting": [], "common": []}
    for kind, total, base in (("counting", n_counting, 0), ("common", n_common, 10**6)):
        if total == 0:
            continue
        pattern = str(out / f"{kind}-%05d.tar")
        with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as sink:
            for i in range(total):
                sid = seed * 10**7 + base + i
                shape = SHAPES[int(rng.integers(len(SHAPES)))]
                colour = COLOURS[int(rng.integers(len(COLOURS)))]
                plural = "crosses" if shape == "cross" else shape + "s"
                meta: dict[str, Any] = {"SAMPLE_ID": sid, "key": f"{i:09d}", "status": "success"}
                if kind == "counting":
                    count = int(counts[int(rng.integers(len(counts)))])
                    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
                    word = NUMBER_WORDS[count]
                    marker = template.replace("{n}", "\0").replace("{N}", "\0")
                    caption = marker.format(colour=colour, shapes=plural)
                    start = caption.index("\0")
                    shown = word.capitalize() if "{N}" in template else word
                    caption = caption.replace("\0", shown)
                    meta.update(
                        count=count,
                        number_start=start,
                        number_end=start + len(word),
                        number_word=shown,
                    )
                else:
                    count = 0
                    caption = f"{colour} {shape} pattern background"
                image = render_scene(Scene(sid, count, shape, colour), size=size)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                sink.write(
                    {"__key__": f"{i:09d}", "jpg": buffer.getvalue(), "txt": caption, "json": meta}
                )
        written[kind] = sorted(str(p) for p in out.glob(f"{kind}-*.tar"))
    return written["counting"], written["common"]


def write_constant_lambdas(path: str | os.PathLike[str], lambda0: float = 1.0) -> Path:
    """A λ file (the lambdas stage's ``lambdas.json``) with λ = ``lambda0`` for every count: what
    training reads beside shards made by :func:`write_synthetic_shards`."""
    import json

    out = Path(path)
    table = {str(c): lambda0 for c in COUNTS}
    record = {"scheme": "constant", "lambda0": lambda0, "frequencies": {}, "lambdas": table}
    out.write_text(json.dumps(record))
    return out
