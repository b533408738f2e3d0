"""What each synthetic image really shows, kept where the pipeline never looks.

The metadata says what the *caption* claims; the ground truth says what the *image* shows
(count, shape, colour) and why the two differ on a noisy row (:data:`NOISE_KINDS`). It is a pure
function of the :class:`WorldConfig` (the metadata generator's own draws), so:

* the image server renders an opaque ``/img/<SAMPLE_ID>.jpg`` from it (:func:`scene_for_request`);
* the baseline pretraining renders its corpus from it, in-process;
* the world stage writes it as ``ground_truth.parquet`` (:func:`write_ground_truth`), beside
  the metadata, never inside it: the metadata stage globs ``metadata/*.parquet``, and no
  metadata column or URL carries the truth, as no LAION column does. Reports read it to score
  the count verification (:func:`countclip.data.verify.quality.verification_quality`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from countclip.atomic import atomic_path
from countclip.config import WorldConfig
from countclip.synthetic.laion_metadata import (
    KIND_COUNTING,
    KIND_DISTRACTOR,
    NOISE_KINDS,
    draw_rows,
)
from countclip.synthetic.world import (
    _PATH_RE,
    COLOURS,
    SHAPES,
    Scene,
    parse_scene_url,
    scene_for_id,
)

CAPTION_KINDS: dict[int, str] = {
    0: "non_counting",
    KIND_COUNTING: "counting",
    KIND_DISTRACTOR: "distractor",
}
GROUND_TRUTH_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("caption_kind", pa.string()),
        ("caption_count", pa.int32()),
        ("true_count", pa.int32()),
        ("shape", pa.string()),
        ("colour", pa.string()),
        ("noise", pa.string()),
    ]
)
"""``caption_count``: the count a counting caption states (null for other captions);
``true_count``: objects drawn (0 = a dense pattern); ``noise``: one of :data:`NOISE_KINDS`."""
_SCENE_KEYS = ("n", "shape", "colour")


@dataclass(frozen=True)
class WorldTruth:
    """Per SAMPLE_ID (``0..rows-1``): what the caption states and what the image shows."""

    caption_kind: np.ndarray
    caption_count: np.ndarray
    count: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    noise: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def scene(self, sample_id: int) -> Scene | None:
        """The scene of a metadata row, or None for an id the metadata does not have."""
        if not 0 <= sample_id < len(self):
            return None
        return Scene(
            int(sample_id),
            int(self.count[sample_id]),
            SHAPES[self.shape[sample_id]],
            COLOURS[self.colour[sample_id]],
        )


_CACHE: dict[str, WorldTruth] = {}
_LOCK = threading.Lock()


def _key(world: WorldConfig) -> str:
    """The world's draws do not depend on where it is served."""
    return world.model_copy(update={"port": 0}).model_dump_json()


def world_truth(world: WorldConfig) -> WorldTruth:
    """The ground truth of ``world`` (computed once per world and process)."""
    key = _key(world)
    with _LOCK:
        truth = _CACHE.get(key)
        if truth is None:
            rows = draw_rows(world)
            truth = WorldTruth(
                caption_kind=rows["kind"].astype(np.int8),
                caption_count=rows["caption_count"].astype(np.int8),
                count=rows["scene_count"].astype(np.int8),
                shape=rows["shape"].astype(np.int8),
                colour=rows["colour"].astype(np.int8),
                noise=rows["noise"].astype(np.int8),
            )
            _CACHE.clear()  # one world at a time is what a process serves
            _CACHE[key] = truth
    return truth


def scene_for_request(path: str, truth: WorldTruth) -> Scene:
    """The scene a request path names: its query when it has one (CountBench, tests, ``?n=``
    URLs), else the world's truth for the id, else :func:`scene_for_id`. ``ValueError`` for a
    path that is no image URL or a bad query."""
    parts = urlsplit(path)
    if any(k in parse_qs(parts.query) for k in _SCENE_KEYS):
        return parse_scene_url(path)
    match = _PATH_RE.fullmatch(parts.path)
    if match is None:
        raise ValueError(f"not a synthetic image URL (want /img/<id>.jpg): {path!r}")
    sample_id = int(match.group(1))
    return truth.scene(sample_id) or scene_for_id(sample_id)


def ground_truth_table(world: WorldConfig) -> pa.Table:
    """One row per metadata row: see :data:`GROUND_TRUTH_SCHEMA`."""
    truth = world_truth(world)
    kinds = np.array([CAPTION_KINDS[k] for k in sorted(CAPTION_KINDS)], dtype=object)
    counting = truth.caption_kind == KIND_COUNTING
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(len(truth), dtype=np.int64)),
            pa.array(kinds[truth.caption_kind], pa.string()),
            pa.array(truth.caption_count.astype(np.int32), mask=~counting),
            pa.array(truth.count.astype(np.int32)),
            pa.array(np.array(SHAPES, dtype=object)[truth.shape], pa.string()),
            pa.array(np.array(COLOURS, dtype=object)[truth.colour], pa.string()),
            pa.array(np.array(NOISE_KINDS, dtype=object)[truth.noise], pa.string()),
        ],
        schema=GROUND_TRUTH_SCHEMA,
    )


def write_ground_truth(path: str | os.PathLike[str], world: WorldConfig) -> Path:
    """Write ``world``'s ground truth parquet atomically (keep it out of the metadata folder);
    returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(ground_truth_table(world), tmp)
    return path
