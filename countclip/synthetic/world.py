"""The vocabulary of the synthetic world and its image URLs.

A :class:`Scene` is the ground truth of one image (id, count, shape, colour). Metadata URLs are
opaque (``/img/<id>.jpg``): the loopback server renders the scene the world's ground truth holds
for the id (:mod:`countclip.synthetic.ground_truth`), so no URL tells the pipeline what a noisy
caption's image really shows. A scene URL (:func:`scene_url`: ``?n=3&shape=star&colour=red``)
names its scene outright; CountBench, whose labels are public anyway, and tests use those. Either
way the server holds no files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from countclip.data.captions.words import NUMBER_WORDS as COUNT_WORDS

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "diamond",
    "hexagon",
    "cross",
    "heart",
)
COLOURS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "white",
    "black",
)
PLURALS: dict[str, str] = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}

# The captions module's two..ten, plus "one": the world also draws single-object scenes.
NUMBER_WORDS: dict[int, str] = {1: "one", **COUNT_WORDS}
MAX_COUNT = 10
"""Scenes hold 1..MAX_COUNT objects; count 0 is the non-counting scene (a dense pattern)."""

COUNTBENCH_ID_BASE = 1_000_000_000_000
"""CountBench sample ids start here; training metadata ids are ``0..rows-1``, always below."""

_PATH_RE = re.compile(r"/img/(\d+)\.jpg")


@dataclass(frozen=True)
class Scene:
    """Ground truth of one synthetic image.

    ``count`` is the number of objects (1..10); 0 means a non-counting scene: a dense, regular
    pattern of many (16-36) small objects of the kind, the kind of image "red star pattern"
    describes, where no caption states a count.
    """

    sample_id: int
    count: int
    shape: str
    colour: str

    def __post_init__(self) -> None:
        if not isinstance(self.sample_id, int) or self.sample_id < 0:
            raise ValueError(f"Scene.sample_id must be an int >= 0, got {self.sample_id!r}")
        if not 0 <= self.count <= MAX_COUNT:
            raise ValueError(f"Scene.count must be 0..{MAX_COUNT}, got {self.count!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"Scene.shape must be one of {SHAPES}, got {self.shape!r}")
        if self.colour not in COLOURS:
            raise ValueError(f"Scene.colour must be one of {COLOURS}, got {self.colour!r}")

    @property
    def kind(self) -> tuple[str, str]:
        """The object kind as (shape, colour)."""
        return self.shape, self.colour


def scene_url(base_url: str, scene: Scene) -> str:
    """``{base_url}/img/{id}.jpg?n={count}&shape={shape}&colour={colour}``."""
    return (
        f"{base_url.rstrip('/')}/img/{scene.sample_id}.jpg"
        f"?n={scene.count}&shape={scene.shape}&colour={scene.colour}"
    )


def scene_for_id(sample_id: int) -> Scene:
    """A deterministic default scene for a bare id (``/img/5.jpg`` with no query).

    Handy for people poking the server by hand and for ``render_sample``; the metadata generator
    does not use it (its scenes follow the captions, and the server finds them in the world's
    ground truth).
    """
    digest = hashlib.blake2b(str(sample_id).encode(), digest_size=8).digest()
    h = int.from_bytes(digest, "little")
    return Scene(
        sample_id,
        h % (MAX_COUNT + 1),
        SHAPES[(h >> 8) % len(SHAPES)],
        COLOURS[(h >> 16) % len(COLOURS)],
    )


def parse_scene_url(url_or_path: str) -> Scene:
    """The :class:`Scene` a URL (or a request path like ``/img/7.jpg?n=3&...``) names.

    Any scheme is accepted (the metadata has a few ``ftp://`` rows). With no query at all the
    scene is :func:`scene_for_id`; a partial or invalid query raises ``ValueError``.
    """
    parts = urlsplit(url_or_path)
    match = _PATH_RE.fullmatch(parts.path)
    if match is None:
        raise ValueError(f"not a synthetic image URL (want /img/<id>.jpg): {url_or_path!r}")
    sample_id = int(match.group(1))
    query = parse_qs(parts.query)
    keys = ("n", "shape", "colour")
    if not any(k in query for k in keys):
        return scene_for_id(sample_id)
    missing = [k for k in keys if k not in query]
    if missing:
        raise ValueError(f"synthetic image URL lacks {missing}: {url_or_path!r}")
    try:
        count = int(query["n"][0])
    except ValueError as exc:
        raise ValueError(f"synthetic image URL has a non-integer n: {url_or_path!r}") from exc
    return Scene(sample_id, count, query["shape"][0], query["colour"][0])
