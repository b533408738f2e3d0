"""Synthetic LAION-400M metadata: parquet parts with the real schema and LAION-like captions.

Vectorised so a million rows take seconds: every caption is one entry of a precomputed table of
all (template, count, shape, colour, casing) combinations, so a row's TEXT is a ``pyarrow`` take
of an index computed with numpy, and its URL a vectorised string join.

URLs are opaque (``/img/<SAMPLE_ID>.jpg``): the image server looks the scene up in the world's
ground truth (:mod:`countclip.synthetic.ground_truth`). A URL that named its scene would hand the
pipeline the true count of every noisy row, which no LAION URL does.

Row mix: ``world.counting_fraction`` counting captions (counts drawn from
``world.count_distribution``), ``world.distractor_fraction`` captions with number words that are
not counts, the rest plain non-counting captions; exact shares, randomly placed. Independently,
a few rows fail the usual LAION quality filters: small HEIGHT/WIDTH (~3 %), NSFW "UNSURE"/"NSFW"
(~4.5 %), similarity below 0.28 (~7 %), non-http(s) URLs (~0.5 %).

Caption noise: ``world.caption_noise`` of the counting rows (exactly, randomly chosen) get an
image that shows another count (:data:`NOISE_KINDS`): off by one or two; a single item under a
"pack of six" caption; or a caption whose number counts something not drawn ("for three kids")
over some other count. Drawn from a random stream of its own, so a world without noise is the
same world, row for row, as with it, apart from the noisy rows.
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countclip.atomic import atomic_path
from countclip.config import WorldConfig
from countclip.data.metadata_query import LAION_SCHEMA
from countclip.synthetic.captions import (
    CASING_WEIGHTS,
    CASINGS,
    COUNTING_TEMPLATES,
    DISTRACTOR_TEMPLATES,
    NON_COUNTING_TEMPLATES,
    PACK_TEMPLATES,
    UNRELATED_COUNT_TEMPLATES,
    apply_casing,
    fill,
)
from countclip.synthetic.world import (
    COLOURS,
    COUNTBENCH_ID_BASE,
    MAX_COUNT,
    NUMBER_WORDS,
    SHAPES,
)

PART_NAME = "part-{:05d}.parquet"

KIND_NON_COUNTING, KIND_COUNTING, KIND_DISTRACTOR = 0, 1, 2
NOISE_KINDS: tuple[str, ...] = ("none", "off_by_one", "off_by_two", "pack", "unrelated")
"""Caption noise kinds; a row's ``noise`` is an index into this tuple (0 = the image shows the
caption's count)."""
NOISE_WEIGHTS: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
"""Shares of off_by_one, off_by_two, pack and unrelated among the noisy rows."""
_S, _C, _K, _NC = len(SHAPES), len(COLOURS), len(CASINGS), MAX_COUNT
_NSFW = np.array(["UNLIKELY", "UNSURE", "NSFW"], dtype=object)
_NSFW_P = (0.955, 0.03, 0.015)
_LICENSES = np.array(
    [
        "?",
        "creativecommons.org/licenses/by/4.0/",
        "creativecommons.org/licenses/by-sa/3.0/",
        "creativecommons.org/licenses/by-nc-nd/2.0/",
    ],
    dtype=object,
)
_LICENSE_P = (0.9, 0.05, 0.03, 0.02)
SMALL_FRACTION = 0.03
LOW_SIMILARITY_FRACTION = 0.07
BAD_URL_FRACTION = 0.005


class MetadataConfigError(ValueError):
    """A WorldConfig the generator cannot honour; the message names the field."""


class CaptionTable(NamedTuple):
    """Every caption the world can write, and where each kind starts in :attr:`texts`."""

    texts: pa.Array
    distractor_offset: int
    non_counting_offset: int
    nc_scene: np.ndarray
    dis_scene: np.ndarray
    unrelated_offset: int


def _counting_block(templates: tuple[str, ...]) -> list[str]:
    texts: list[str] = []
    for t in templates:
        for n in range(1, _NC + 1):
            for s in SHAPES:
                for c in COLOURS:
                    base = fill(t, s, c, NUMBER_WORDS[n])
                    texts.extend(apply_casing(base, k) for k in CASINGS)
    return texts


@lru_cache(maxsize=1)
def caption_table() -> CaptionTable:
    """All captions the world can write, and how to index them.

    Counting caption (t, count, s, c, k) is entry ``(((t*10 + count-1)*S + s)*C + c)*K + k``;
    the noisy "unrelated" counting captions follow the same layout from ``unrelated_offset``;
    distractor and non-counting captions follow at their offsets as ``((t*S + s)*C + c)*K + k``.
    ``*_scene`` give each non-counting/distractor template's scene count (0 pattern, 1 single
    object).
    """
    texts = _counting_block(COUNTING_TEMPLATES)
    dis_offset = len(texts)
    for t, _ in DISTRACTOR_TEMPLATES:
        for s in SHAPES:
            for c in COLOURS:
                texts.extend(apply_casing(fill(t, s, c), k) for k in CASINGS)
    nc_offset = len(texts)
    for t, _ in NON_COUNTING_TEMPLATES:
        for s in SHAPES:
            for c in COLOURS:
                texts.extend(apply_casing(fill(t, s, c), k) for k in CASINGS)
    unrelated_offset = len(texts)
    texts.extend(_counting_block(UNRELATED_COUNT_TEMPLATES))
    nc_scene = np.array([sc for _, sc in NON_COUNTING_TEMPLATES], dtype=np.int64)
    dis_scene = np.array([sc for _, sc in DISTRACTOR_TEMPLATES], dtype=np.int64)
    return CaptionTable(
        pa.array(texts, pa.string()), dis_offset, nc_offset, nc_scene, dis_scene, unrelated_offset
    )


def _count_distribution(world: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    items = sorted((int(k), float(v)) for k, v in world.count_distribution.items())
    counts = np.array([k for k, _ in items], dtype=np.int64)
    probs = np.array([v for _, v in items], dtype=np.float64)
    if len(items) == 0 or (counts < 1).any() or (counts > MAX_COUNT).any():
        raise MetadataConfigError(
            f"world.count_distribution: keys must be counts 1..{MAX_COUNT}, got {counts.tolist()}"
        )
    if (probs < 0).any() or probs.sum() <= 0:
        raise MetadataConfigError("world.count_distribution: weights must be >= 0, sum > 0")
    return counts, probs / probs.sum()


def draw_rows(world: WorldConfig) -> dict[str, np.ndarray]:
    """Every random choice of every row, vectorised (deterministic given ``world.seed``)."""
    n = world.rows
    if world.counting_fraction + world.distractor_fraction > 1:
        raise MetadataConfigError(
            "world.counting_fraction + world.distractor_fraction must be <= 1, got "
            f"{world.counting_fraction} + {world.distractor_fraction}"
        )
    if n >= COUNTBENCH_ID_BASE:
        raise MetadataConfigError(f"world.rows must be < {COUNTBENCH_ID_BASE} (CountBench ids)")
    counts, probs = _count_distribution(world)
    table = caption_table()
    dis_offset, nc_offset = table.distractor_offset, table.non_counting_offset
    nc_scene, dis_scene = table.nc_scene, table.dis_scene
    rng = np.random.default_rng([world.seed, 0x1A10])

    n_count = round(n * world.counting_fraction)
    n_dis = min(n - n_count, round(n * world.distractor_fraction))
    kind = np.full(n, KIND_NON_COUNTING, dtype=np.int8)
    kind[:n_count] = KIND_COUNTING
    kind[n_count : n_count + n_dis] = KIND_DISTRACTOR
    rng.shuffle(kind)

    shape = rng.integers(0, _S, n)
    colour = rng.integers(0, _C, n)
    casing = rng.choice(_K, n, p=CASING_WEIGHTS)
    count = rng.choice(counts, n, p=probs)
    t_count = rng.integers(0, len(COUNTING_TEMPLATES), n)
    t_nc = rng.integers(0, len(NON_COUNTING_TEMPLATES), n)
    t_dis = rng.integers(0, len(DISTRACTOR_TEMPLATES), n)

    sck = (shape * _C + colour) * _K + casing
    is_c, is_d = kind == KIND_COUNTING, kind == KIND_DISTRACTOR
    block = _S * _C * _K
    caption = np.where(
        is_c,
        (t_count * _NC + count - 1) * block + sck,
        np.where(is_d, dis_offset + t_dis * block + sck, nc_offset + t_nc * block + sck),
    )
    scene_count = np.where(is_c, count, np.where(is_d, dis_scene[t_dis], nc_scene[t_nc]))
    noise = _add_noise(world, is_c, count, sck, caption, scene_count)

    size = np.full(n, world.image_size, dtype=np.int32)
    height, width = size.copy(), size.copy()
    small = rng.random(n) < SMALL_FRACTION
    which = rng.integers(0, 3, n)  # 0 height, 1 width, 2 both
    tiny = rng.integers(16, 64, n).astype(np.int32)
    height = np.where(small & (which != 1), tiny, height)
    width = np.where(small & (which != 0), tiny, width)
    similarity = np.where(
        rng.random(n) < LOW_SIMILARITY_FRACTION,
        rng.uniform(0.12, 0.28, n),
        rng.uniform(0.28, 0.40, n),
    )
    scheme = np.where(rng.random(n) < BAD_URL_FRACTION, rng.integers(1, 3, n), 0)
    return {
        "kind": kind,
        "caption": caption,
        "caption_count": np.where(is_c, count, 0),
        "scene_count": scene_count,
        "shape": shape,
        "colour": colour,
        "noise": noise,
        "scheme": scheme,
        "height": height.astype(np.int32),
        "width": width.astype(np.int32),
        "nsfw": rng.choice(3, n, p=_NSFW_P),
        "license": rng.choice(len(_LICENSES), n, p=_LICENSE_P),
        "similarity": similarity,
    }


def _add_noise(
    world: WorldConfig,
    is_counting: np.ndarray,
    count: np.ndarray,
    sck: np.ndarray,
    caption: np.ndarray,
    scene_count: np.ndarray,
) -> np.ndarray:
    """Give ``world.caption_noise`` of the counting rows an image of another count, in place
    (``caption``, ``scene_count``); returns each row's noise kind (index into NOISE_KINDS)."""
    rng = np.random.default_rng([world.seed, 0x4015E])
    noise = np.zeros(len(count), dtype=np.int8)
    counting = np.flatnonzero(is_counting)
    rows = np.sort(rng.choice(counting, round(len(counting) * world.caption_noise), replace=False))
    k = len(rows)
    kinds = rng.choice(np.arange(1, len(NOISE_KINDS)), k, p=NOISE_WEIGHTS).astype(np.int8)
    stated = count[rows]
    kinds[(kinds == 3) & (stated == 1)] = 1  # "pack of one" showing one item is no noise
    offset = np.where(kinds == 2, 2, 1) * rng.choice([-1, 1], k)
    shifted = stated + offset
    shifted = np.where((shifted < 1) | (shifted > MAX_COUNT), stated - offset, shifted)
    other = (stated - 1 + rng.integers(1, MAX_COUNT, k)) % MAX_COUNT + 1  # any count but stated
    pack_template = np.array(PACK_TEMPLATES)[rng.integers(0, len(PACK_TEMPLATES), k)]
    unrelated_template = rng.integers(0, len(UNRELATED_COUNT_TEMPLATES), k)
    block = _S * _C * _K
    scene_count[rows] = np.select([kinds <= 2, kinds == 3], [shifted, 1], other)
    caption[rows] = np.select(
        [kinds == 3, kinds == 4],
        [
            (pack_template * _NC + stated - 1) * block + sck[rows],
            caption_table().unrelated_offset
            + (unrelated_template * _NC + stated - 1) * block
            + sck[rows],
        ],
        caption[rows],
    )
    noise[rows] = kinds
    return noise


def generate_metadata(
    out_dir: str | os.PathLike[str], world: WorldConfig, base_url: str
) -> list[Path]:
    """Write ``world.rows`` rows of LAION-400M-schema metadata as ``world.parts`` parquet parts.

    ``SAMPLE_ID`` runs ``0..rows-1`` (disjoint from CountBench's ids); URLs point at
    ``base_url`` (the running :class:`ImageServer`). Deterministic given ``world``; each part is
    written atomically. Returns the part paths in order.
    """
    out_dir = Path(out_dir)
    rows = draw_rows(world)
    texts = caption_table().texts
    base = base_url.rstrip("/")
    rest = base.split("://", 1)[-1]
    prefixes = pa.array([base, f"ftp://{rest}", f"file://{rest}"], pa.string())
    nsfw = pa.array(_NSFW.tolist(), pa.string())
    licenses = pa.array(_LICENSES.tolist(), pa.string())
    bounds = np.linspace(0, world.rows, world.parts + 1).astype(np.int64)
    paths = []
    for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        sl = slice(int(lo), int(hi))
        ids = pa.array(np.arange(lo, hi, dtype=np.int64))
        url = pc.binary_join_element_wise(
            pc.take(prefixes, pa.array(rows["scheme"][sl])),
            "/img/",
            ids.cast(pa.string()),
            ".jpg",
            "",
        )
        table = pa.Table.from_arrays(
            [
                ids,
                url,
                pc.take(texts, pa.array(rows["caption"][sl])),
                pa.array(rows["height"][sl], pa.int32()),
                pa.array(rows["width"][sl], pa.int32()),
                pc.take(licenses, pa.array(rows["license"][sl])),
                pc.take(nsfw, pa.array(rows["nsfw"][sl])),
                pa.array(rows["similarity"][sl], pa.float64()),
            ],
            schema=LAION_SCHEMA,
        )
        path = out_dir / PART_NAME.format(part)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        paths.append(path)
    return paths


def row_kinds(world: WorldConfig) -> np.ndarray:
    """Caption kind of every row :func:`generate_metadata` writes for ``world`` (by SAMPLE_ID):
    0 non-counting, 1 counting, 2 distractor. Ground truth for tests of caption filters."""
    return draw_rows(world)["kind"]
